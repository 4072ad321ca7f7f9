//! Characters that change how text looks without being seen: controls (Unicode Cc),
//! formatting characters (Cf: the bidirectional overrides and isolates, zero-width
//! spaces and joiners, the BOM), line and paragraph separators (Zl, Zp) and the other
//! default-ignorable code points (variation selectors, Hangul fillers, tags).
//!
//! A username containing one can pass for another in a list or a log line (`adm` +
//! U+202E + `nim` shows as another name), and a log line containing one can hide or
//! reorder what follows it. Usernames refuse them; the runtime log escapes them.

use std::borrow::Cow;

/// Cf, Zl, Zp and Default_Ignorable_Code_Point of Unicode 16.0 beyond Cc (which
/// `char::is_control` covers), as inclusive ranges in ascending order.
const HIDDEN: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // soft hyphen
    (0x034F, 0x034F),   // combining grapheme joiner
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound and piastre marks above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x115F, 0x1160),   // Hangul fillers
    (0x17B4, 0x17B5),   // Khmer inherent vowels
    (0x180B, 0x180F),   // Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),   // zero-width space, joiners, LRM, RLM
    (0x2028, 0x202E),   // line and paragraph separators, bidirectional embeddings and overrides
    (0x2060, 0x206F),   // word joiner, invisible operators, bidirectional isolates, deprecated formats
    (0x3164, 0x3164),   // Hangul filler
    (0xFE00, 0xFE0F),   // variation selectors
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
    (0xFFF0, 0xFFFB),   // unassigned specials, interlinear annotation
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol formatting
    (0xE0000, 0xE0FFF), // tags and variation selectors supplement
];

/// Whether `c` is a control, formatting, separator or otherwise invisible character.
pub fn is_hidden(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    let c = c as u32;
    HIDDEN
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `text` with every hidden character but `keep` written as `\u{…}`, so it shows instead
/// of acting.
pub fn escape_hidden<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !text.chars().any(|c| is_hidden(c) && !keep.contains(&c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) && !keep.contains(&c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_of_every_kind() {
        for c in [
            '\0',
            '\n',
            '\t',
            '\u{1b}',
            '\u{7f}',
            '\u{85}', // Cc
            '\u{ad}',
            '\u{200b}',
            '\u{200d}',
            '\u{200e}',
            '\u{202a}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{e0041}', // Cf
            '\u{2028}',
            '\u{2029}', // Zl, Zp
            '\u{fe0f}',
            '\u{3164}',
            '\u{115f}',
            '\u{34f}', // other default-ignorables
        ] {
            assert!(is_hidden(c), "U+{:04X}", c as u32);
        }
        for c in ['a', 'Z', ' ', '-', '_', 'é', 'ß', 'Ж', '中', 'ع', '😀', '\u{a0}', '\u{2030}', '\u{fffd}'] {
            assert!(!is_hidden(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for w in HIDDEN.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:x?}");
        }
    }

    #[test]
    fn escaping_shows_what_would_act() {
        assert_eq!(escape_hidden("plain", &[]), "plain");
        assert!(matches!(escape_hidden("plain", &[]), Cow::Borrowed(_)));
        assert_eq!(escape_hidden("adm\u{202e}nim", &[]), "adm\\u{202e}nim");
        assert_eq!(escape_hidden("a\nb\u{1b}[2J", &['\n']), "a\nb\\u{1b}[2J");
    }
}
