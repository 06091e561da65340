//! Text from the guest or an API made safe for a terminal: control
//! characters (escape sequences, carriage returns, bidirectional overrides)
//! are written as `\u{..}` escapes, long text is cut, and secret values
//! are blanked ([`crate::secrets::hide`]).

/// Whether `c` can change what a terminal shows beyond printing itself.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character escaped, cut to about `max_bytes`
/// (the cut says how much was left out).
pub fn printable(text: &str, max_bytes: usize) -> String {
    escape(text, max_bytes, false)
}

/// As [`printable`], but line breaks stay line breaks.
pub fn printable_lines(text: &str, max_bytes: usize) -> String {
    escape(text, max_bytes, true)
}

fn escape(text: &str, max_bytes: usize, keep_newlines: bool) -> String {
    let text = &*crate::secrets::hide(text);
    let mut out = String::with_capacity(text.len().min(max_bytes) + 16);
    for (at, c) in text.char_indices() {
        if out.len() >= max_bytes {
            out.push_str(&format!("… ({} more bytes)", text.len() - at));
            break;
        }
        if is_unsafe(c) && !(keep_newlines && c == '\n') {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(printable("plain text", 100), "plain text");
        assert_eq!(
            printable("\x1b[31mred\x07\r\n\u{202e}x\u{9b}", 100),
            "\\u{1b}[31mred\\u{7}\\u{d}\\u{a}\\u{202e}x\\u{9b}"
        );
        let long = "é".repeat(10_000);
        let cut = printable(&long, 4096);
        assert!(cut.len() < 4200, "{}", cut.len());
        assert_eq!(printable_lines("a\nb\x1b", 100), "a\nb\\u{1b}");
        assert!(
            cut.ends_with("(15904 more bytes)"),
            "{}",
            &cut[cut.len() - 40..]
        );
    }
}
