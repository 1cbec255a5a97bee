//! Cutting strings that came from input (commit ids typed by hand, status
//! files, names) without ever splitting a character: slicing a `&str` at a
//! byte index panics when the index falls inside a multi-byte character.

/// The longest start of `s` that is at most `max` bytes long.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest end of `s` that is at most `max` bytes long.
pub fn cut_front(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A commit id (or anything typed where one is expected) shortened for
/// messages, as `git log --oneline` does: at most 12 bytes.
pub fn short_id(s: &str) -> &str {
    cut(s, 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("ab", 3), "ab");
        // 'é' is two bytes: byte 12 falls inside the seventh one.
        let s = "éééééééééé";
        assert_eq!(cut(s, 12), "éééééé");
        assert_eq!(cut(s, 13), "éééééé");
        assert_eq!(short_id("aaaaaaaaaaa€x"), "aaaaaaaaaaa");
        assert_eq!(cut_front("ab€", 2), "");
        assert_eq!(cut_front("ab€", 3), "€");
        assert_eq!(cut_front("ab€", 4), "b€");
    }
}
