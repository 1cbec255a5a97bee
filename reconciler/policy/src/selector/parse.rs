//! Parser for Calico's selector language (tokenizer.go / parser.go rules S1-S2).
//!
//! Whitespace is only space and tab; strings have no escapes; a word at the
//! start of an operand is always a label; `!` binds to one operation.

use std::collections::BTreeSet;
use std::fmt;

use super::expr::Expr;

const MAX_LABEL_LEN: usize = 512;
/// Calico's CRDs cap selector fields at 1024 characters; longer text is
/// refused before parsing, so no input makes the parser work unboundedly.
pub const MAX_SELECTOR_LEN: usize = 1024;
/// Parentheses and `!` nest at most this deep. The parser and every walk
/// over an [`Expr`] recurse once per level, so the bound keeps them far from
/// the stack's end on any thread.
pub const MAX_DEPTH: usize = 64;

/// Why a selector did not parse, and the 1-based character column where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based character column where parsing stopped.
    pub col: usize,
    /// What was wrong there.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid selector at column {}: {}", self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a Calico selector; an empty or blank selector is `all()`.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_SELECTOR_LEN {
        return Err(ParseError {
            col: MAX_SELECTOR_LEN + 1,
            message: format!("selector is {} characters long; Calico allows at most {MAX_SELECTOR_LEN}", chars.len()),
        });
    }
    parse_chars(chars, MAX_DEPTH)
}

/// Parses a selector that Calico's update processors composed from fields
/// that each parsed on their own: a few fields joined with `(…) && …`, so
/// longer than one field may be and a few levels deeper.
pub(crate) fn parse_composed(text: &str) -> Result<Expr, ParseError> {
    parse_chars(text.chars().collect(), MAX_DEPTH + COMPOSED_DEPTH)
}

/// Composing prints fields canonically, which parenthesises every `&&` and
/// `||` group (so a field may come back nested twice as deep), then adds a
/// few levels of its own.
const COMPOSED_DEPTH: usize = MAX_DEPTH + 16;

fn parse_chars(chars: Vec<char>, max_depth: usize) -> Result<Expr, ParseError> {
    let mut p = Parser { s: chars, i: 0, depth: 0, max_depth };
    p.ws();
    if p.at_end() {
        return Ok(Expr::All);
    }
    let e = p.or()?;
    p.ws();
    if !p.at_end() {
        return Err(p.err(format!("unexpected {}", p.describe())));
    }
    Ok(e)
}

struct Parser {
    s: Vec<char>,
    i: usize,
    /// How many `(` and `!` enclose the current position.
    depth: usize,
    max_depth: usize,
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

impl Parser {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError { col: self.i + 1, message: message.into() }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of selector".into(),
            Some('\n') => "newline (selectors are one line)".into(),
            Some(c) => format!("{c:?}"),
        }
    }

    /// Enters one more level of `(` or `!`, or refuses at this column.
    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.err(format!("selector nests more than {} levels of '(' and '!'", self.max_depth)));
        }
        Ok(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        let n = lit.chars().count();
        if self.s.len() >= self.i + n && self.s[self.i..self.i + n].iter().copied().eq(lit.chars()) {
            self.i += n;
            true
        } else {
            false
        }
    }

    /// Eats a keyword only if it ends at a word boundary.
    fn eat_word(&mut self, word: &str) -> bool {
        let start = self.i;
        if self.eat(word) && !self.peek().is_some_and(is_label_char) {
            return true;
        }
        self.i = start;
        false
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and()?];
        loop {
            self.ws();
            if self.eat("||") {
                terms.push(self.and()?);
            } else {
                return Ok(Expr::or(terms));
            }
        }
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.unary()?];
        loop {
            self.ws();
            if self.eat("&&") {
                terms.push(self.unary()?);
            } else if terms.len() == 1 {
                return Ok(terms.pop().expect("one term"));
            } else {
                // Not Expr::and: `all() && x` must keep its all() for round trips.
                let mut flat = Vec::new();
                for t in terms {
                    match t {
                        Expr::And(inner) => flat.extend(inner),
                        t => flat.push(t),
                    }
                }
                return Ok(Expr::And(flat));
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.ws();
        if self.peek() == Some('!') && self.s.get(self.i + 1) != Some(&'=') {
            self.deeper()?;
            self.i += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::negate(inner));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.ws();
        if self.peek() == Some('(') {
            self.deeper()?;
            self.i += 1;
            let e = self.or()?;
            self.ws();
            if !self.eat(")") {
                return Err(self.err(format!("expected ')', found {}", self.describe())));
            }
            self.depth -= 1;
            return Ok(e);
        }
        let start = self.i;
        if self.eat("has(") {
            self.ws();
            let label = self.label()?;
            self.ws();
            if !self.eat(")") {
                return Err(self.err(format!("expected ')' after has({label}, found {}", self.describe())));
            }
            return Ok(Expr::Has(label));
        }
        if self.eat("all(") {
            self.ws();
            if self.eat(")") {
                return Ok(Expr::All);
            }
            return Err(self.err("all() takes no arguments"));
        }
        if self.eat("global(") {
            self.ws();
            if self.eat(")") {
                return Ok(Expr::Global);
            }
            return Err(self.err("global() takes no arguments"));
        }
        self.i = start;
        let label = self.label()?;
        self.ws();
        if self.eat("==") {
            return Ok(Expr::Eq(label, self.string()?));
        }
        if self.eat("!=") {
            return Ok(Expr::Ne(label, self.string()?));
        }
        if self.eat_word("contains") {
            return Ok(Expr::Contains(label, self.string()?));
        }
        if self.eat_word("startswith") || self.two_words("starts", "with") {
            return Ok(Expr::StartsWith(label, self.string()?));
        }
        if self.eat_word("endswith") || self.two_words("ends", "with") {
            return Ok(Expr::EndsWith(label, self.string()?));
        }
        if self.eat_word("notin") || self.two_words("not", "in") {
            return Ok(Expr::NotIn(label, self.set()?));
        }
        if self.eat_word("in") {
            return Ok(Expr::In(label, self.set()?));
        }
        Err(self.err(format!("expected an operator after label {label:?}, found {}", self.describe())))
    }

    fn two_words(&mut self, a: &str, b: &str) -> bool {
        let start = self.i;
        if self.eat(a) && matches!(self.peek(), Some(' ' | '\t')) {
            self.ws();
            if self.eat_word(b) {
                return true;
            }
        }
        self.i = start;
        false
    }

    fn label(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        while self.peek().is_some_and(is_label_char) {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err(format!("expected a label, found {}", self.describe())));
        }
        if self.i - start > MAX_LABEL_LEN {
            return Err(ParseError {
                col: start + 1,
                message: format!("label longer than {MAX_LABEL_LEN} characters"),
            });
        }
        Ok(self.s[start..self.i].iter().collect())
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.ws();
        let Some(q @ ('"' | '\'')) = self.peek() else {
            return Err(self.err(format!("expected a quoted string, found {}", self.describe())));
        };
        let open = self.i;
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let s = self.s[start..self.i].iter().collect();
                self.i += 1;
                return Ok(s);
            }
            self.i += 1;
        }
        Err(ParseError { col: open + 1, message: "unterminated string".into() })
    }

    fn set(&mut self) -> Result<BTreeSet<String>, ParseError> {
        self.ws();
        if !self.eat("{") {
            return Err(self.err(format!("expected '{{', found {}", self.describe())));
        }
        let mut items = BTreeSet::new();
        loop {
            self.ws();
            if self.eat("}") {
                return Ok(items);
            }
            items.insert(self.string()?);
            self.ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(items);
            }
            return Err(self.err(format!("expected ',' or '}}', found {}", self.describe())));
        }
    }
}
