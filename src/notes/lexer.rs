//! Splits notes text into blocks of `key:value` pairs (spec §1, §2).
//!
//! Quotes only matter where a value starts: an apostrophe in prose
//! ("don't") must not swallow the rest of the notes, so a `;` in free text
//! always ends a block, and only a quoted *value* protects a `;`.

use std::ops::Range;

/// How a value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    Double,
    Single,
    Bare,
}

/// One `key:value` pair as written.
#[derive(Clone, PartialEq, Eq)]
pub struct RawPair {
    /// The key exactly as written (case preserved).
    pub key: String,
    pub key_span: Range<usize>,
    /// The value with quotes removed, escapes applied and whitespace trimmed.
    pub value: String,
    /// The value as written, quotes included.
    pub value_span: Range<usize>,
    pub quote: Quote,
    /// 1-based line of the key.
    pub line: usize,
    /// The quoted value never closed (it then runs to the end of the notes).
    pub unterminated: bool,
    /// Free text follows the value before the next pair or `;` (for a bare
    /// value this usually means a value with a space that needed quotes).
    pub text_after: bool,
}

/// Values show only for recognised keys that never hold secrets: a password,
/// token or settings item, or a fragment of one under an unknown "key",
/// must not reach a log through `{:?}`.
impl std::fmt::Debug for RawPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known = super::keys::Key::lookup(&self.key);
        let shown = known.is_some_and(|k| !k.value_is_sensitive());
        let value: &dyn std::fmt::Debug = if shown { &self.value } else { &"***" };
        let key: &dyn std::fmt::Debug = if known.is_some() { &self.key } else { &"***" };
        f.debug_struct("RawPair")
            .field("key", key)
            .field("key_span", &self.key_span)
            .field("value", value)
            .field("value_span", &self.value_span)
            .field("quote", &self.quote)
            .field("line", &self.line)
            .field("unterminated", &self.unterminated)
            .field("text_after", &self.text_after)
            .finish()
    }
}

impl RawPair {
    /// The bytes of the whole pair, from the key to the end of the value.
    pub fn span(&self) -> Range<usize> {
        self.key_span.start..self.value_span.end
    }
}

/// A run of text ended by `;` (or by the end of the notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBlock {
    /// From the end of the previous block to this block's `;` inclusive.
    pub span: Range<usize>,
    pub pairs: Vec<RawPair>,
    /// False for the last block when the notes do not end it with `;`.
    pub terminated: bool,
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Byte offsets where lines start, for 1-based line numbers. CR, LF and CRLF
/// each end a line.
pub struct Lines(Vec<usize>);

impl Lines {
    pub fn new(text: &str) -> Lines {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 2;
                    continue;
                }
                b'\r' | b'\n' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        Lines(starts)
    }

    pub fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// Splits the notes into raw blocks. Never fails: anything that is not a pair
/// is free text.
pub fn lex(text: &str) -> Vec<RawBlock> {
    let bytes = text.as_bytes();
    let lines = Lines::new(text);
    let mut blocks = Vec::new();
    let mut block_start = 0;
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b';' {
            mark_text_after(text, &mut pairs, i);
            blocks.push(RawBlock {
                span: block_start..i + 1,
                pairs: std::mem::take(&mut pairs),
                terminated: true,
            });
            i += 1;
            block_start = i;
            continue;
        }
        let at_word_start = i == 0 || !is_key_byte(bytes[i - 1]);
        if !(is_key_byte(b) && at_word_start) {
            i += 1;
            continue;
        }
        let mut key_end = i;
        while key_end < bytes.len() && is_key_byte(bytes[key_end]) {
            key_end += 1;
        }
        if bytes.get(key_end) != Some(&b':') {
            i = key_end;
            continue;
        }
        mark_text_after(text, &mut pairs, i);
        let mut v = key_end + 1;
        while v < bytes.len() && bytes[v].is_ascii_whitespace() {
            v += 1;
        }
        let (value, value_end, quote, unterminated) = read_value(text, v);
        pairs.push(RawPair {
            key: text[i..key_end].to_owned(),
            key_span: i..key_end,
            value: value.trim().to_owned(),
            value_span: v..value_end,
            quote,
            line: lines.line_of(i),
            unterminated,
            text_after: false,
        });
        i = value_end;
    }
    mark_text_after(text, &mut pairs, bytes.len());
    if block_start < bytes.len() || !pairs.is_empty() {
        blocks.push(RawBlock {
            span: block_start..bytes.len(),
            pairs,
            terminated: false,
        });
    }
    blocks
}

/// Notes whether anything but whitespace lies between the last pair of the
/// block and `at`.
fn mark_text_after(text: &str, pairs: &mut [RawPair], at: usize) {
    if let Some(last) = pairs.last_mut()
        && last.value_span.end <= at
    {
        last.text_after = !text[last.value_span.end..at].trim().is_empty();
    }
}

/// Reads the value starting at `start`: returns the value (unescaped, not yet
/// trimmed), the end of the written value, its form, and whether a quote
/// was left open.
fn read_value(text: &str, start: usize) -> (String, usize, Quote, bool) {
    let bytes = text.as_bytes();
    match bytes.get(start) {
        Some(b'"') => {
            let mut out = String::new();
            let mut i = start + 1;
            let mut run_start = i;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        out.push_str(&text[run_start..i]);
                        return (out, i + 1, Quote::Double, false);
                    }
                    b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\\')) => {
                        out.push_str(&text[run_start..i]);
                        out.push(bytes[i + 1] as char);
                        i += 2;
                        run_start = i;
                    }
                    _ => i += 1,
                }
            }
            out.push_str(&text[run_start..]);
            (out, bytes.len(), Quote::Double, true)
        }
        Some(b'\'') => match text[start + 1..].find('\'') {
            Some(len) => {
                let end = start + 1 + len;
                (
                    text[start + 1..end].to_owned(),
                    end + 1,
                    Quote::Single,
                    false,
                )
            }
            None => (
                text[start + 1..].to_owned(),
                bytes.len(),
                Quote::Single,
                true,
            ),
        },
        _ => {
            let mut end = start;
            while end < bytes.len() && bytes[end] != b';' && !bytes[end].is_ascii_whitespace() {
                end += 1;
            }
            (text[start..end].to_owned(), end, Quote::Bare, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<Vec<(String, String)>> {
        lex(text)
            .into_iter()
            .map(|b| b.pairs.into_iter().map(|p| (p.key, p.value)).collect())
            .collect()
    }

    #[test]
    fn value_forms() {
        let v = values(r#"a:"x;\"y\\" b:'q"; r' c:d:e;"#);
        assert_eq!(
            v,
            vec![vec![
                ("a".into(), r#"x;"y\"#.into()),
                ("b".into(), r#"q"; r"#.into()),
                ("c".into(), "d:e".into()),
            ]]
        );
    }

    #[test]
    fn prose_apostrophe_does_not_open_a_quote() {
        let v = values("don't reboot; user:x;");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1], vec![("user".into(), "x".into())]);
    }

    #[test]
    fn lines_count_cr_lf_crlf() {
        let l = Lines::new("a\r\nb\nc\rd");
        assert_eq!(
            [l.line_of(0), l.line_of(3), l.line_of(5), l.line_of(7)],
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn unterminated_quote_runs_to_end() {
        let blocks = lex("user:\"abc; pass:x;");
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].pairs[0].unterminated);
        assert!(!blocks[0].terminated);
    }
}
