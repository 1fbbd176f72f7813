//! Escaping and cutting the texts clients send, so that a record is one safe log line.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The mark that ends a cut text.
const CUT_MARK: char = '…';

/// Whether `c` is written as an escape: C0 and C1 controls, DEL, the
/// backslash, line and paragraph separators, bidirectional formatting
/// characters, and the double quote when `quote` is set.
fn must_escape(c: char, quote: bool) -> bool {
    c.is_control()
        || c == '\\'
        || (quote && c == '"')
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Writes the escape of `c` (ASCII) to `out`.
fn push_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// `text` with control characters escaped (see the [module](self) docs), at
/// most `max` characters of it (an escape is never split), ending with `…`
/// when something was cut. Borrows when nothing changes.
pub(crate) fn sanitize(text: &str, max: usize, quote: bool) -> Cow<'_, str> {
    for (kept, (at, c)) in text.char_indices().enumerate() {
        if kept == max || must_escape(c, quote) {
            return Cow::Owned(sanitize_from(text, at, kept, max, quote));
        }
    }
    Cow::Borrowed(text)
}

fn sanitize_from(text: &str, at: usize, mut kept: usize, max: usize, quote: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)) + 8);
    out.push_str(&text[..at]);
    let mut escape = String::new();
    for c in text[at..].chars() {
        let escaped = must_escape(c, quote);
        if escaped {
            escape.clear();
            push_escape(&mut escape, c);
        }
        let piece = escaped.then_some(escape.as_str());
        let width = piece.map_or(1, str::len);
        if kept.saturating_add(width) > max {
            out.push(CUT_MARK);
            break;
        }
        match piece {
            Some(piece) => out.push_str(piece),
            None => out.push(c),
        }
        kept += width;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_as_is() {
        assert!(matches!(
            sanitize("plain text, ünïcode ✓", 100, false),
            Cow::Borrowed("plain text, ünïcode ✓")
        ));
        assert!(matches!(sanitize("abc", 3, false), Cow::Borrowed("abc")));
    }

    #[test]
    fn controls_are_escaped_visibly() {
        assert_eq!(
            sanitize(
                "a\nb\rc\td\\e\u{1b}[0m\u{0}\u{7f}\u{85}\u{9f}\u{2028}\u{202e}",
                100,
                false
            ),
            r"a\nb\rc\td\\e\u{1b}[0m\u{0}\u{7f}\u{85}\u{9f}\u{2028}\u{202e}"
        );
        assert_eq!(sanitize("say \"hi\"", 100, false), "say \"hi\"");
        assert_eq!(sanitize("say \"hi\"", 100, true), r#"say \"hi\""#);
    }

    #[test]
    fn long_texts_are_cut_and_marked_without_splitting_an_escape() {
        assert_eq!(sanitize("abcdef", 4, false), "abcd…");
        assert_eq!(sanitize("ééééé", 3, false), "ééé…");
        // `\u{1b}` is 6 characters: it does not fit in the 2 left.
        assert_eq!(sanitize("abcd\u{1b}", 6, false), "abcd…");
        assert_eq!(sanitize("ab\ncd", 4, false), r"ab\n…");
        assert_eq!(sanitize("", 0, false), "");
        assert_eq!(sanitize("a", 0, false), "…");
    }
}
