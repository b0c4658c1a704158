//! The rule for text that a person reads (names, titles, descriptions, reasons, notes,
//! references, tags) and for the characters of nonces: what a reader sees is what was signed.
//!
//! A readable text is at most its field's number of bytes of UTF-8, in Unicode normalization
//! form C, with no control character (general category Cc, U+0000 to U+001F and U+007F to
//! U+009F, line breaks and tabs included) and no bidirectional formatting character (U+061C,
//! U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), and not blank: at least one character
//! that is neither white space nor invisible ([`is_invisible`]). Text that is not NFC is refused
//! rather than normalized, so that the signed bytes and the recorded value stay the same.

use unicode_normalization::is_nfc;

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is {len} bytes; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("contains the control character U+{0:04X}")]
    Control(u32),
    #[error("contains the bidirectional formatting character U+{0:04X}")]
    Bidi(u32),
    #[error("is blank (only white space and invisible characters)")]
    Blank,
    #[error("is not in Unicode normalization form C (NFC)")]
    NotNfc,
}

/// A control character: general category Cc.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// A bidirectional formatting character: the embeddings and overrides U+202A to U+202E, the
/// isolates U+2066 to U+2069, and the marks U+200E, U+200F and U+061C.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// White space, or a character that shows nothing by itself: the soft hyphen, the combining
/// grapheme joiner, the Hangul fillers, the Mongolian and Khmer invisible signs, the zero-width
/// space, non-joiner and joiner (U+200B to U+200D), the word joiner and invisible operators
/// (U+2060 to U+2064), the variation selectors and the byte order mark (U+FEFF).
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// Checks a readable text of at most `max_bytes` bytes.
pub fn check_readable(text: &str, max_bytes: usize) -> Result<(), TextError> {
    if text.len() > max_bytes {
        return Err(TextError::TooLong {
            len: text.len(),
            max: max_bytes,
        });
    }
    check_no_control_or_bidi(text)?;
    if text.chars().all(is_invisible) {
        return Err(TextError::Blank);
    }
    if !is_nfc(text) {
        return Err(TextError::NotNfc);
    }
    Ok(())
}

/// Checks that a text holds no control and no bidirectional formatting character (the rule for
/// nonces, which no one reads as prose but which tools print).
pub fn check_no_control_or_bidi(text: &str) -> Result<(), TextError> {
    for c in text.chars() {
        if is_control(c) {
            return Err(TextError::Control(c.into()));
        }
        if is_bidi_control(c) {
            return Err(TextError::Bidi(c.into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_in_any_script_are_accepted() {
        for name in [
            "重庆市科学技术局",
            "Chongqing Testing Lab",
            "Ærø Prüfinstitut",
            "مختبر",
            "a b",
        ] {
            assert_eq!(check_readable(name, 256), Ok(()), "{name}");
        }
    }

    #[test]
    fn blank_and_invisible_only_texts_are_refused() {
        for text in [
            "",
            " ",
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{FEFF}",
            "\u{2060} \u{3000}",
            "\u{00AD}",
        ] {
            assert_eq!(check_readable(text, 256), Err(TextError::Blank), "{text:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for (text, c) in [
            ("\0", 0),
            ("a\0b", 0),
            ("a\nb", 0x0A),
            ("a\tb", 0x09),
            ("\u{7F}x", 0x7F),
            ("x\u{85}", 0x85),
            ("\u{1B}[31m", 0x1B),
        ] {
            assert_eq!(
                check_readable(text, 256),
                Err(TextError::Control(c)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn bidirectional_formatting_is_refused() {
        for c in [
            '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}',
            '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            let text = format!("invoice{c}fdp.exe");
            assert_eq!(
                check_readable(&text, 256),
                Err(TextError::Bidi(c.into())),
                "{text:?}"
            );
            assert_eq!(
                check_no_control_or_bidi(&text),
                Err(TextError::Bidi(c.into()))
            );
        }
    }

    #[test]
    fn text_must_be_nfc_and_within_its_length() {
        // "é" as e + U+0301 is the NFD form of the NFC "é" (U+00E9).
        assert_eq!(
            check_readable("caf\u{65}\u{301}", 256),
            Err(TextError::NotNfc)
        );
        assert_eq!(check_readable("caf\u{E9}", 256), Ok(()));
        assert_eq!(check_readable(&"检".repeat(85), 255), Ok(()));
        assert_eq!(
            check_readable(&"检".repeat(86), 257),
            Err(TextError::TooLong { len: 258, max: 257 })
        );
    }
}
