//! The selectors Felix evaluates, composed the way Calico composes them: as
//! text (C2, C3; cal-upd networkpolicyprocessor.go,
//! globalnetworkpolicyprocessor.go, rules.go, selectors.go).
//!
//! Calico's update processors join a policy's selector fields with
//! `(…) && …`, prefix namespace and service-account selectors with `pcns.` /
//! `pcsa.`, and turn `all()` and `global()` into label tests with plain string
//! replacement. The replacement is textual and reaches wherever the text
//! says `all()`: into string literals, and in a GlobalNetworkPolicy into the
//! user's own `selector`. netward builds the same text and parses the result,
//! so it means what Felix evaluates, not what the fields seem to say. Every
//! field was parsed (and its errors placed) on its own before it gets here.

use crate::diag::{DResult, Diagnostic, Pos};
use crate::model::cluster::{NS_LABEL, SA_LABEL};
use crate::selector::{parse_composed, Expr};

/// `has(projectcalico.org/namespace)`: what `all()` becomes in a namespace selector.
fn has_namespace() -> String {
    format!("has({NS_LABEL})")
}

/// `parseSelectorAttachPrefix`: the selector parsed, every label prefixed,
/// printed in canonical form (where `all()` stays `all()`). No length limit:
/// a Kubernetes label selector may print longer than a Calico field.
fn prefixed_text(raw: &str, prefix: &str, at: &Pos) -> DResult<String> {
    Ok(compose(raw, at)?.prefixed(prefix, &Expr::All).to_string())
}

/// `prefixAndAppendSelector`.
fn prefix_and_append(current: String, new: &str, prefix: &str, at: &Pos) -> DResult<String> {
    if new.is_empty() {
        return Ok(current);
    }
    let p = prefixed_text(new, prefix, at)?;
    Ok(if current.is_empty() { p } else { format!("({current}) && {p}") })
}

/// Parses composed text. What Calico composes but cannot parse (a blank
/// field wrapped as `( )`) makes Felix drop the policy (or, for a blank
/// notSelector, stop): refused here with the text, so no commit holding it
/// is ever enforced as less than it says.
fn compose(text: &str, at: &Pos) -> DResult<Expr> {
    parse_composed(text).map_err(|e| {
        Diagnostic::error(
            at.clone(),
            format!(
                "Calico composes the selector {text:?} here and cannot parse it ({}), so Felix would drop this policy; a blank selector is the likely cause: leave it out or write all()",
                e.message
            ),
        )
    })
}

/// The policy-level fields of a Calico policy, as written ("" when absent).
pub struct PolicySelectors<'a> {
    /// `selector`.
    pub selector: &'a str,
    /// `namespaceSelector` (GlobalNetworkPolicy only).
    pub namespace_selector: &'a str,
    /// `serviceAccountSelector`.
    pub service_account_selector: &'a str,
}

/// The endpoints a Calico policy applies to (C2). A namespaced policy ANDs
/// its namespace and appends the service-account selector with no `all()`
/// rewriting; a global one rewrites `all()` everywhere in the text after each
/// append, the user's `selector` included.
pub fn policy_selector(f: &PolicySelectors<'_>, namespace: Option<&str>, at: &Pos) -> DResult<Expr> {
    let own = f.selector;
    let text = match namespace {
        Some(ns) => {
            let ns_term = format!("{NS_LABEL} == '{ns}'");
            let scoped = if own.is_empty() { ns_term } else { format!("({own}) && {ns_term}") };
            prefix_and_append(scoped, f.service_account_selector, "pcsa.", at)?
        }
        None => {
            let mut sel = own.to_string();
            if !f.namespace_selector.is_empty() {
                sel = prefix_and_append(sel, f.namespace_selector, "pcns.", at)?.replace("all()", &has_namespace());
            }
            if !f.service_account_selector.is_empty() {
                sel = prefix_and_append(sel, f.service_account_selector, "pcsa.", at)?
                    .replace("all()", &format!("has({SA_LABEL})"));
            }
            sel
        }
    };
    compose(&text, at)
}

/// One rule side's selector fields, as written ("" when absent).
#[derive(Default)]
pub struct EntitySelectors<'a> {
    /// `namespaceSelector`.
    pub namespace_selector: &'a str,
    /// `selector`.
    pub selector: &'a str,
    /// `notSelector`.
    pub not_selector: &'a str,
    /// `serviceAccounts.selector`.
    pub service_account_selector: &'a str,
    /// `serviceAccounts.names`.
    pub service_account_names: Vec<String>,
}

/// A rule side's selectors as Felix evaluates them: the positive selector
/// (`getEndpointSelector`) with the notSelector folded into it whenever there
/// is one (`combineMatchesIfPossible`, C3), and the notSelector left over
/// when there is no positive selector to fold it into.
pub fn entity_selectors(
    f: &EntitySelectors<'_>,
    policy_ns: Option<&str>,
    at: &Pos,
) -> DResult<(Option<Expr>, Option<Expr>)> {
    let endpoint = f.selector.to_string();
    let not_sel = f.not_selector.to_string();

    let ns_text = if !f.namespace_selector.is_empty() {
        prefixed_text(f.namespace_selector, "pcns.", at)?
            .replace("all()", &has_namespace())
            .replace("global()", &format!("!{}", has_namespace()))
    } else if let Some(ns) = policy_ns {
        format!("{NS_LABEL} == '{ns}'")
    } else {
        String::new()
    };

    // parseServiceAccounts: the prefixed selector (no all() rewriting) AND the names.
    let mut sa = String::new();
    if !f.service_account_selector.is_empty() {
        sa = prefixed_text(f.service_account_selector, "pcsa.", at)?;
    }
    if !f.service_account_names.is_empty() {
        let names = Expr::In(SA_LABEL.into(), f.service_account_names.iter().cloned().collect()).to_string();
        sa = if sa.is_empty() { names } else { format!("({sa}) && ({names})") };
    }

    let parts: Vec<&str> = [sa.as_str(), endpoint.as_str()].into_iter().filter(|s| !s.is_empty()).collect();
    let mut selector = match parts.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        many => format!("({})", many.join(") && (")),
    };
    if !ns_text.is_empty() && (!selector.is_empty() || !not_sel.is_empty() || !f.namespace_selector.is_empty()) {
        selector = if selector.is_empty() { ns_text } else { format!("({ns_text}) && ({selector})") };
    }

    if selector.is_empty() {
        let negative = if not_sel.is_empty() { None } else { Some(compose(&not_sel, at)?) };
        return Ok((None, negative));
    }
    if !not_sel.is_empty() {
        selector = format!("({selector}) && (!({not_sel}))");
    }
    Ok((Some(compose(&selector, at)?), None))
}
