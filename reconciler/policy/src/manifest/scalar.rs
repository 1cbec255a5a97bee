//! Where a character of a decoded string scalar is written in the source.
//!
//! A selector error says "column 14 of the selector"; the file shows the
//! selector through YAML's scalar styles, which escape (`\"`, `\u0041`),
//! double quotes (`''`), and fold lines (plain, quoted and `>` scalars turn a
//! line break and the next line's indentation into one space). This replays
//! the style over the source text, one decoded character at a time, so an
//! error points at the character the user wrote.

/// The 1-based (line, column) of decoded character `index` of the scalar
/// that starts at (`line`, `col`); past the end, the place just after its
/// last character.
pub fn char_position(text: &str, line: u32, col: u32, index: usize) -> (u32, u32) {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let start = (line.max(1) as usize - 1, col.max(1) as usize - 1);
    let Some(first) = lines.get(start.0).and_then(|l| l.get(start.1)).copied() else {
        return (line, col + index as u32);
    };
    let mut walk = Walk { lines: &lines, want: index, seen: 0, found: None, last: start };
    match first {
        '"' => walk.quoted(start.0, start.1 + 1, '"'),
        '\'' => walk.quoted(start.0, start.1 + 1, '\''),
        '|' | '>' => walk.block(start.0, first == '>'),
        _ => walk.plain(start.0, start.1),
    }
    let (l, c) = walk.found.unwrap_or((walk.last.0, walk.last.1 + 1));
    (l as u32 + 1, c as u32 + 1)
}

struct Walk<'a> {
    lines: &'a [Vec<char>],
    want: usize,
    seen: usize,
    found: Option<(usize, usize)>,
    /// The source place of the last character emitted.
    last: (usize, usize),
}

impl Walk<'_> {
    fn done(&self) -> bool {
        self.found.is_some()
    }

    /// One decoded character, written at (line, col).
    fn emit(&mut self, at: (usize, usize)) {
        if self.seen == self.want && self.found.is_none() {
            self.found = Some(at);
        }
        self.seen += 1;
        self.last = at;
    }

    /// A line break inside a flow scalar: empty lines become one `\n` each,
    /// otherwise the break and the next line's indentation become one space.
    /// Returns where the next line's content starts, if there is one.
    fn fold(&mut self, from_line: usize) -> Option<(usize, usize)> {
        let at = (from_line, self.lines[from_line].len());
        let mut l = from_line + 1;
        let mut empty = 0;
        while l < self.lines.len() && self.lines[l].iter().all(|c| *c == ' ' || *c == '\t') {
            empty += 1;
            l += 1;
        }
        if l >= self.lines.len() {
            return None;
        }
        for _ in 0..empty.max(1) {
            self.emit(at);
        }
        let indent = self.lines[l].iter().take_while(|c| **c == ' ' || **c == '\t').count();
        Some((l, indent))
    }

    fn quoted(&mut self, mut l: usize, mut c: usize, quote: char) {
        // Spaces wait until something follows them on the same line: a
        // line's trailing spaces are folded away with its break.
        let mut spaces: Vec<(usize, usize)> = Vec::new();
        while !self.done() {
            let Some(&ch) = self.lines[l].get(c) else {
                spaces.clear();
                match self.fold(l) {
                    Some(next) => (l, c) = next,
                    None => return,
                }
                continue;
            };
            if ch == ' ' || ch == '\t' {
                spaces.push((l, c));
                c += 1;
                continue;
            }
            for s in spaces.drain(..) {
                self.emit(s);
            }
            match ch {
                q if q == quote && quote == '\'' && self.lines[l].get(c + 1) == Some(&'\'') => {
                    self.emit((l, c));
                    c += 2;
                }
                q if q == quote => return,
                '\\' if quote == '"' => {
                    let len = match self.lines[l].get(c + 1) {
                        // A backslash at the end of a line joins the lines with nothing between.
                        None => {
                            match self.fold_escaped(l) {
                                Some(next) => (l, c) = next,
                                None => return,
                            }
                            continue;
                        }
                        Some('x') => 4,
                        Some('u') => 6,
                        Some('U') => 10,
                        Some(_) => 2,
                    };
                    self.emit((l, c));
                    c += len;
                }
                _ => {
                    self.emit((l, c));
                    c += 1;
                }
            }
        }
    }

    fn fold_escaped(&mut self, l: usize) -> Option<(usize, usize)> {
        let next = l + 1;
        let line = self.lines.get(next)?;
        Some((next, line.iter().take_while(|c| **c == ' ' || **c == '\t').count()))
    }

    fn plain(&mut self, mut l: usize, mut c: usize) {
        let mut spaces: Vec<(usize, usize)> = Vec::new();
        while !self.done() {
            let Some(&ch) = self.lines[l].get(c) else {
                spaces.clear();
                match self.fold(l) {
                    Some(next) => (l, c) = next,
                    None => return,
                }
                continue;
            };
            if ch == ' ' || ch == '\t' {
                spaces.push((l, c));
            } else {
                for s in spaces.drain(..) {
                    self.emit(s);
                }
                self.emit((l, c));
            }
            c += 1;
        }
    }

    /// `|` keeps each line's break; `>` folds a break between two lines of
    /// text into a space. Content is indented as its first non-empty line.
    fn block(&mut self, header: usize, folded: bool) {
        let mut l = header + 1;
        let Some(indent) = self.lines[l.min(self.lines.len())..]
            .iter()
            .find(|line| line.iter().any(|c| *c != ' ' && *c != '\t'))
            .map(|line| line.iter().take_while(|c| **c == ' ').count())
        else {
            return;
        };
        let mut prev_text = false;
        while l < self.lines.len() && !self.done() {
            let line = &self.lines[l];
            let blank = line.iter().all(|c| *c == ' ' || *c == '\t');
            if !blank && line.iter().take_while(|c| **c == ' ').count() < indent {
                return;
            }
            if blank {
                // In a folded scalar the break before an empty line is dropped.
                if !(folded && prev_text) {
                    self.emit((l, 0));
                }
                prev_text = false;
            } else {
                for c in indent..line.len() {
                    self.emit((l, c));
                }
                // The line's break (a space when `>` folds it into the next line).
                self.emit((l, line.len()));
                prev_text = true;
            }
            l += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::char_position;

    fn at(text: &str, line: u32, col: u32, index: usize) -> (u32, u32) {
        char_position(text, line, col, index)
    }

    #[test]
    fn plain_and_quoted_scalars_on_one_line() {
        let t = "selector: app == 'x' &&& b\n";
        assert_eq!(at(t, 1, 11, 0), (1, 11));
        assert_eq!(at(t, 1, 11, 13), (1, 24));
        let t = "selector: \"app == 'x' &&& b\"\n";
        assert_eq!(at(t, 1, 11, 13), (1, 25));
    }

    #[test]
    fn escapes_in_double_quotes_count_as_one_character() {
        // Decoded: app == "x" &&& b  (the \" and \u0041 escapes).
        let t = "selector: \"app == \\\"x\\u0041\\\" &&& b\"\n";
        // 'app == "xA" ' is 12 characters: the third & is index 14.
        let col = t.find("&&&").unwrap() as u32 + 1 + 2;
        assert_eq!(at(t, 1, 11, 14), (1, col));
    }

    #[test]
    fn doubled_single_quotes_count_as_one_character() {
        let t = "selector: 'app == \"it''s\" &&& b'\n";
        // Decoded: app == "it's" &&& b; the third & is index 16.
        let col = t.find("&&&").unwrap() as u32 + 1 + 2;
        assert_eq!(at(t, 1, 11, 16), (1, col));
    }

    #[test]
    fn folded_lines_point_into_the_right_line() {
        let t = "spec:\n  selector: >\n    app == 'a' &&\n    && b\n";
        // Decoded: "app == 'a' && && b\n"; the second && starts at index 14.
        assert_eq!(at(t, 2, 13, 14), (4, 5));
        let t = "spec:\n  selector: \"app == 'a' &&\n    && b\"\n";
        assert_eq!(at(t, 2, 13, 14), (3, 5));
        let t = "spec:\n  selector: app == 'a' &&\n    && b\n";
        assert_eq!(at(t, 2, 13, 14), (3, 5));
    }

    #[test]
    fn past_the_end_is_just_after_the_last_character() {
        let t = "selector: \"a ==\"\n";
        assert_eq!(at(t, 1, 11, 4), (1, 16));
    }
}
