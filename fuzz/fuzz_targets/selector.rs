//! The selector parser must never panic, and whatever it accepts must print
//! to text that parses back to an equivalent selector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netward_policy::selector::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = parse(text) {
        let printed = expr.to_string();
        let back = parse(&printed).unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} does not parse: {e}"));
        assert_eq!(back.to_string(), printed, "printing is not stable for {text:?}");
    }
});
