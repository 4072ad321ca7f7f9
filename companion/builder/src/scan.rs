//! Reading the preprocessor directives at the top of a C or C++ file, and whether a header
//! guards itself against a second inclusion: what decides where a precompiled header may
//! stand in for the text it was made from (`pch.rs`).

/// A directive before the first line of code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Directive {
    /// `#include "name"` (quoted) or `#include <name>`.
    Include {
        quoted: bool,
        name: String,
    },
    PragmaOnce,
    /// Any other directive (`#define`, `#if`, ...).
    Other(String),
}

impl Directive {
    /// The directive as a line of source.
    pub fn line(&self) -> String {
        match self {
            Directive::Include { quoted: true, name } => format!("#include \"{name}\""),
            Directive::Include { quoted: false, name } => format!("#include <{name}>"),
            Directive::PragmaOnce => "#pragma once".into(),
            Directive::Other(text) => text.clone(),
        }
    }
}

/// The directives before the first line of code (comments and blank lines skipped), at most
/// `limit` of them.
pub(crate) fn leading_directives(text: &[u8], limit: usize) -> Vec<Directive> {
    let mut found = Vec::new();
    for line in logical_lines(text) {
        if found.len() == limit {
            break;
        }
        match line {
            Line::Directive(d) => found.push(d),
            Line::Code => break,
        }
    }
    found
}

/// Whether a header includes its body once only: `#pragma once` first, or the whole file
/// inside `#ifndef G` / `#define G` ... `#endif`.
pub(crate) fn is_guarded(text: &[u8]) -> bool {
    let lines: Vec<Line> = logical_lines(text).collect();
    let mut directives = lines.iter();
    match directives.next() {
        Some(Line::Directive(Directive::PragmaOnce)) => return true,
        Some(Line::Directive(Directive::Other(first))) => {
            let Some(guard) = first.strip_prefix("#ifndef").map(str::trim) else { return false };
            match directives.next() {
                Some(Line::Directive(Directive::Other(second)))
                    if second.strip_prefix("#define").map(|r| r.split_whitespace().next()) == Some(Some(guard)) => {}
                _ => return false,
            }
        }
        _ => return false,
    }
    // The #ifndef must close at the very end: no code or directive after its #endif.
    let mut depth = 0i32;
    for (i, line) in lines.iter().enumerate() {
        if let Line::Directive(Directive::Other(text)) = line {
            let word = text.trim_start_matches('#').split_whitespace().next().unwrap_or("");
            match word {
                "if" | "ifdef" | "ifndef" => depth += 1,
                "endif" => {
                    depth -= 1;
                    if depth == 0 {
                        return i == lines.len() - 1;
                    }
                }
                _ => {}
            }
        }
    }
    false
}

enum Line {
    Directive(Directive),
    /// Anything that is not a directive, comment or blank.
    Code,
}

/// The file's logical lines that are not blank or comments only.
fn logical_lines(text: &[u8]) -> impl Iterator<Item = Line> + '_ {
    let text = String::from_utf8_lossy(text).into_owned();
    let stripped = strip_comments(&text.replace("\\\r\n", "").replace("\\\n", ""));
    stripped
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.strip_prefix('#') {
            Some(rest) => Line::Directive(directive(rest.trim_start())),
            None => Line::Code,
        })
        .collect::<Vec<_>>()
        .into_iter()
}

fn directive(rest: &str) -> Directive {
    if let Some(arg) = rest.strip_prefix("include").map(str::trim) {
        if let Some(name) = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
            return Directive::Include { quoted: true, name: name.to_string() };
        }
        if let Some(name) = arg.strip_prefix('<').and_then(|a| a.strip_suffix('>')) {
            return Directive::Include { quoted: false, name: name.to_string() };
        }
    }
    if rest.strip_prefix("pragma").map(|r| r.split_whitespace().collect::<Vec<_>>()) == Some(vec!["once"]) {
        return Directive::PragmaOnce;
    }
    Directive::Other(format!("#{}", rest.split_whitespace().collect::<Vec<_>>().join(" ")))
}

/// `text` with comments replaced by a space (a block comment keeps its line breaks);
/// string and character literals are left alone.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push(' ');
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            '"' | '\'' => {
                out.push(c);
                let mut escaped = false;
                for n in chars.by_ref() {
                    out.push(n);
                    if n == '\n' || (n == c && !escaped) {
                        break;
                    }
                    escaped = n == '\\' && !escaped;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_directives_before_the_code() {
        let text = b"// licence\n/* block\n comment */\n#pragma once\n\n#include \"iec_types.hpp\" // why\n\
                     #  include <cstddef>\n#define X 1\n#include \"late.h\"\nnamespace strucpp {}\n#include \"never.h\"\n";
        let found = leading_directives(text, 100);
        assert_eq!(
            found,
            [
                Directive::PragmaOnce,
                Directive::Include { quoted: true, name: "iec_types.hpp".into() },
                Directive::Include { quoted: false, name: "cstddef".into() },
                Directive::Other("#define X 1".into()),
                Directive::Include { quoted: true, name: "late.h".into() },
            ]
        );
        assert_eq!(leading_directives(text, 2).len(), 2);
        assert_eq!(leading_directives(b"int x; // #include \"a.h\"\n", 10), []);
        assert_eq!(found[2].line(), "#include <cstddef>");
    }

    #[test]
    fn tells_guarded_headers() {
        assert!(is_guarded(b"// c\n#pragma once\nint x;\n"));
        assert!(is_guarded(b"/* c */\n#ifndef A_H\n#define A_H\n#if X\nint y;\n#endif\nint x;\n#endif // A_H\n\n"));
        assert!(!is_guarded(b"#ifndef A_H\n#define A_H\n#endif\nint x;\n"), "code after the guard");
        assert!(!is_guarded(b"#ifndef A_H\n#define B_H\nint x;\n#endif\n"), "not the same macro");
        assert!(!is_guarded(b"int x;\n#pragma once\n"));
        assert!(!is_guarded(b"#define A 1\n"));
        assert!(!is_guarded(b"#ifndef A_H\n#define A_H\nint x;\n"), "never closed");
    }
}
