use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn m(sel: &str, pairs: &[(&str, &str)]) -> bool {
    Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}")).matches(&labels(pairs))
}

#[test]
fn equality_and_inequality_s3() {
    assert!(m("app == 'web'", &[("app", "web")]));
    assert!(!m("app == 'web'", &[("app", "db")]));
    assert!(!m("app == 'web'", &[]));
    assert!(m("app != 'web'", &[]), "!= matches when the label is absent");
    assert!(!m("app != 'web'", &[("app", "web")]));
}

#[test]
fn set_membership_matches_absent_for_not_in() {
    assert!(m("tier in {'a', 'b'}", &[("tier", "b")]));
    assert!(!m("tier in {'a', 'b'}", &[]));
    assert!(m("tier not in {'a'}", &[]));
    assert!(m("tier notin {'a'}", &[("tier", "c")]));
    assert!(!m("tier not   in {'a'}", &[("tier", "a")]));
    assert!(!m("x in {}", &[("x", "")]), "empty set matches nothing");
    assert!(m("x in {'a',}", &[("x", "a")]), "trailing comma accepted");
}

#[test]
fn has_all_global_and_string_ops() {
    assert!(m("has(app)", &[("app", "")]));
    assert!(m("has( app )", &[("app", "x")]));
    assert!(m("!has(app)", &[]));
    assert!(m("! has(app)", &[]));
    assert!(!m("!all()", &[("a", "b")]));
    assert!(m("all()", &[]));
    assert!(m("global()", &[]));
    assert!(m("a contains 'ell'", &[("a", "hello")]));
    assert!(m("a starts with 'he'", &[("a", "hello")]));
    assert!(m("a startswith 'he'", &[("a", "hello")]));
    assert!(m("a ends with 'lo'", &[("a", "hello")]));
    assert!(m("a endswith ''", &[("a", "x")]));
    assert!(!m("a contains ''", &[]), "string ops need the label present");
}

#[test]
fn precedence_not_binds_tightest_then_and_then_or() {
    // a || b && c == a || (b && c)
    assert!(m("has(a) || has(b) && has(c)", &[("a", "")]));
    assert!(!m("(has(a) || has(b)) && has(c)", &[("a", "")]));
    // ! applies to one operation
    assert!(m("!has(a) && has(b)", &[("b", "")]));
    assert!(m("!!has(a)", &[("a", "")]));
}

#[test]
fn keywords_are_labels_at_operand_start() {
    assert!(m("not in {'x'}", &[("not", "x")]));
    assert!(m("contains == 'y'", &[("contains", "y")]));
    assert!(m("has == 'y'", &[("has", "y")]));
    assert!(m("all == 'z'", &[("all", "z")]));
}

#[test]
fn strings_have_no_escapes_and_either_quote() {
    assert!(m(r#"a == "x\""#, &[("a", "x\\")]));
    assert!(m(r#"a == 'say "hi"'"#, &[("a", "say \"hi\"")]));
    assert!(m(r#"a == "it's""#, &[("a", "it's")]));
}

#[test]
fn prefixed_label_keys() {
    assert!(m(
        "projectcalico.org/namespace == 'ns1' && pcns.team == 'a'",
        &[("projectcalico.org/namespace", "ns1"), ("pcns.team", "a")]
    ));
}

#[test]
fn empty_selector_is_all() {
    assert_eq!(parse("").unwrap(), Expr::All);
    assert_eq!(parse("  \t ").unwrap(), Expr::All);
}

#[test]
fn errors_carry_the_column() {
    let cases: &[(&str, usize)] = &[
        ("app = 'x'", 5),
        ("app == x", 8),
        ("'x' == app", 1),
        ("app", 4),
        ("has(app) == 'x'", 10),
        ("(has(a)", 8),
        ("has(a) &&", 10),
        ("a in {'x' 'y'}", 11),
        ("a == 'x", 6),
        ("a == 'x'\n", 9),
        ("a & b", 3),
        ("a inx {}", 3),
        ("has (a)", 5),
    ];
    for (sel, col) in cases {
        let e = parse(sel).expect_err(sel);
        assert_eq!(e.col, *col, "{sel}: {e}");
    }
}

#[test]
fn label_length_limit() {
    let ok = format!("has({})", "a".repeat(512));
    assert!(parse(&ok).is_ok());
    let bad = format!("has({})", "a".repeat(513));
    assert!(parse(&bad).is_err());
}

#[test]
fn canonical_text_sorts_sets_and_groups() {
    let e = parse("b in {'z','a','a'} && (x == 'y' || !has(c))").unwrap();
    assert_eq!(e.to_string(), r#"(b in {"a", "z"} && (x == "y" || !has(c)))"#);
}

#[test]
fn label_selector_translation_k7() {
    let ml = labels(&[("app", "web")]);
    let e = from_label_selector(
        &ml,
        &[Requirement::NotIn("env".into(), vec!["prod".into()]), Requirement::DoesNotExist("legacy".into())],
    );
    assert!(e.eval(&labels(&[("app", "web")])));
    assert!(e.eval(&labels(&[("app", "web"), ("env", "dev")])));
    assert!(!e.eval(&labels(&[("app", "web"), ("env", "prod")])));
    assert!(!e.eval(&labels(&[("app", "web"), ("legacy", "")])));
    assert_eq!(from_label_selector(&BTreeMap::new(), &[]), Expr::All);
}

#[test]
fn label_key_syntax() {
    assert!(check_label_key("app").is_ok());
    assert!(check_label_key("kubernetes.io/metadata.name").is_ok());
    assert!(check_label_key("-app").is_err());
    assert!(check_label_key("Foo.com/x").is_err());
    assert!(check_label_value("").is_ok());
    assert!(check_label_value("a b").is_err());
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_string()),
        Just("tier".to_string()),
        Just("in".to_string()),
        Just("not".to_string()),
        Just("projectcalico.org/namespace".to_string()),
        "[a-z][a-z0-9_./-]{0,6}",
    ]
}

fn arb_val() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9 ]{0,4}", Just("q\"x".to_string()), Just("it's".to_string())]
        .prop_filter("a value cannot contain both quote styles", |v| !(v.contains('"') && v.contains('\'')))
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(Expr::All),
        arb_key().prop_map(Expr::Has),
        (arb_key(), arb_val()).prop_map(|(k, v)| Expr::Eq(k, v)),
        (arb_key(), arb_val()).prop_map(|(k, v)| Expr::Ne(k, v)),
        (arb_key(), proptest::collection::btree_set(arb_val(), 0..3)).prop_map(|(k, v)| Expr::In(k, v)),
        (arb_key(), proptest::collection::btree_set(arb_val(), 0..3)).prop_map(|(k, v)| Expr::NotIn(k, v)),
        (arb_key(), arb_val()).prop_map(|(k, v)| Expr::Contains(k, v)),
        (arb_key(), arb_val()).prop_map(|(k, v)| Expr::StartsWith(k, v)),
        (arb_key(), arb_val()).prop_map(|(k, v)| Expr::EndsWith(k, v)),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(Expr::negate),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            proptest::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

/// Normalises nesting the parser flattens, so printed-then-parsed trees compare equal.
fn flatten(e: Expr) -> Expr {
    match e {
        Expr::And(es) => {
            let mut out = Vec::new();
            for x in es.into_iter().map(flatten) {
                match x {
                    Expr::And(inner) => out.extend(inner),
                    x => out.push(x),
                }
            }
            Expr::And(out)
        }
        Expr::Or(es) => Expr::or(es.into_iter().map(flatten).collect()),
        Expr::Not(e) => Expr::negate(flatten(*e)),
        e => e,
    }
}

proptest! {
    #[test]
    fn printed_selectors_parse_back_to_the_same_tree(e in arb_expr()) {
        let text = e.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(flatten(back), flatten(e), "{}", text);
    }

    #[test]
    fn printed_selectors_evaluate_the_same(e in arb_expr(),
        ls in proptest::collection::btree_map(arb_key(), arb_val(), 0..4)) {
        let back = parse(&e.to_string()).expect("round trip");
        prop_assert_eq!(back.eval(&ls), e.eval(&ls));
    }

    #[test]
    fn parser_never_panics(s in "\\PC{0,40}") {
        let _ = parse(&s);
    }
}

// Regression (#13): 10,000 nested parentheses or 100,000 `!` overflowed the
// stack (SIGABRT) in validate, select and reconcile.
#[test]
fn deep_nesting_is_an_error_at_its_column_not_a_crash() {
    let deep = format!("{}has(a){}", "(".repeat(10_000), ")".repeat(10_000));
    let e = parse(&deep).unwrap_err();
    assert_eq!(e.col, 1025, "{e}");
    assert!(e.message.contains("at most 1024"), "{e}");
    let bangs = format!("{}has(a)", "!".repeat(100_000));
    assert_eq!(parse(&bangs).unwrap_err().col, 1025);
    // Within the length limit, nesting is bounded on its own.
    let nested = format!("{}has(a){}", "(".repeat(65), ")".repeat(65));
    let e = parse(&nested).unwrap_err();
    assert_eq!(e.col, 65, "the 65th '(' is refused: {e}");
    assert!(e.message.contains("more than 64 levels"), "{e}");
    let e = parse(&format!("{}has(a)", "!".repeat(65))).unwrap_err();
    assert_eq!(e.col, 65, "{e}");
    // 64 levels still parse.
    let ok = format!("{}has(a){}", "(".repeat(64), ")".repeat(64));
    assert!(m(&ok, &[("a", "")]));
    assert!(m(&format!("{}has(a)", "!".repeat(64)), &[("a", "")]));
    // A flat selector of exactly 1024 characters parses.
    let flat = format!("{}has(a)", "has(a) && ".repeat(101));
    assert_eq!(flat.len(), 1016);
    assert!(m(&format!("{flat}{}", " ".repeat(8)), &[("a", "")]), "1024 characters");
    assert!(parse(&format!("{flat}{}", " ".repeat(9))).is_err(), "1025 characters");
}
