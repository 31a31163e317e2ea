//! The Rust side of the row rules: reads `ROW_RULES(RULE)` of `kernels/row_rules.cuh` (which rows
//! each kernel family can serve, stated once, in C) and writes `OUT_DIR/row_rules.rs`, one
//! `pub(crate) fn row_<name>(p: &SamplingParams, vocab: u32) -> bool` per rule, which
//! `src/params.rs` includes. The expression is translated token by token, and only tokens that
//! mean the same in C and in Rust are accepted (a `u` or `f` suffix becomes `u32` / `f32`): a rule
//! that uses anything else is a build error, never a silent difference between the two sides.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// The `(name, expression)` pairs of `ROW_RULES`, in order. `header` is the file's text.
fn parse(header: &str) -> Vec<(String, String)> {
    let mut body = String::new();
    let mut in_macro = false;
    for line in header.lines() {
        if line.starts_with("#define ROW_RULES(RULE)") {
            in_macro = true;
            continue;
        }
        if in_macro {
            let continued = line.trim_end().ends_with('\\');
            body.push_str(line.trim_end().trim_end_matches('\\'));
            body.push(' ');
            if !continued {
                break;
            }
        }
    }
    assert!(in_macro, "kernels/row_rules.cuh defines ROW_RULES(RULE)");
    let body = strip_block_comments(&body);
    let mut rules = Vec::new();
    let mut rest = body.as_str();
    while let Some(at) = rest.find("RULE(") {
        let inner = &rest[at + "RULE(".len()..];
        let end = closing_paren(inner).unwrap_or_else(|| panic!("row_rules.cuh: unclosed RULE("));
        let (name, expression) = inner[..end].split_once(',').unwrap_or_else(|| {
            panic!(
                "row_rules.cuh: RULE({}) needs a name and an expression",
                &inner[..end]
            )
        });
        rules.push((name.trim().to_string(), expression.trim().to_string()));
        rest = &inner[end + 1..];
    }
    assert!(
        !rules.is_empty(),
        "kernels/row_rules.cuh: ROW_RULES has no RULE"
    );
    rules
}

/// `text` without its `/* ... */` comments (the macro's lines carry them).
fn strip_block_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("*/")
            .expect("row_rules.cuh: unclosed /* comment");
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// The index of the `)` that closes an already opened `(` in `text`.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `expression` (C) as Rust, or a panic naming the token neither side would read the same way.
fn translate(rule: &str, expression: &str) -> String {
    let chars: Vec<char> = expression.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let fail = |what: &str| -> ! { panic!("row_rules.cuh: RULE({rule}, ...): {what}") };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word == "p" {
                // A field: `p.name` reads the same in both languages.
                if chars.get(i) != Some(&'.') {
                    fail("`p` is only read as `p.<field>`");
                }
                i += 1;
                let field_start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let field: String = chars[field_start..i].iter().collect();
                let _ = write!(out, " p.{field}");
            } else if word == "vocab"
                || word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                // `vocab`, or a constant of the kernels (`crate::gpu::constants`, in scope).
                let _ = write!(out, " {word}");
            } else {
                fail(&format!("unknown name `{word}`"));
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || ".eE".contains(chars[i])) {
                // An exponent's sign belongs to the literal.
                if "eE".contains(chars[i]) && matches!(chars.get(i + 1), Some('+' | '-')) {
                    i += 1;
                }
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            let suffix = match chars.get(i) {
                Some('u' | 'U') if !digits.contains(['.', 'e', 'E']) => "u32",
                Some('f' | 'F') if digits.contains(['.', 'e', 'E']) => "f32",
                _ => fail(&format!(
                    "literal `{digits}` needs its type: a `u` or an `f` suffix"
                )),
            };
            i += 1;
            let _ = write!(out, " {digits}{suffix}");
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = if ["==", "!=", "<=", ">=", "&&", "||"].contains(&two.as_str()) {
                two
            } else if "<>!()".contains(c) {
                c.to_string()
            } else {
                fail(&format!("operator `{c}` is not one the rules use"))
            };
            i += op.len();
            let _ = write!(out, " {op}");
        }
    }
    out.trim()
        .replace("( ", "(")
        .replace(" )", ")")
        .replace("! ", "!")
}

/// Writes `OUT_DIR/row_rules.rs` from `kernels_dir/row_rules.cuh`.
pub fn write(kernels_dir: &Path, out_dir: &Path) {
    let path = kernels_dir.join("row_rules.cuh");
    let header = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rust = String::from(
        "// Generated by build.rs (build/rules.rs) from kernels/row_rules.cuh: edit the rules there.\n",
    );
    for (name, expression) in parse(&header) {
        let body = translate(&name, &expression);
        let expression = expression.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            rust,
            "/// `{name}` of kernels/row_rules.cuh: `{expression}`.\n\
             #[allow(dead_code)] // the kernels use every rule, the host some\n\
             #[allow(clippy::manual_range_contains, clippy::excessive_precision, clippy::nonminimal_bool)]\n\
             pub(crate) fn row_{name}(p: &SamplingParams, vocab: u32) -> bool {{\n    \
             let _ = vocab;\n    {body}\n}}"
        );
    }
    fs::write(out_dir.join("row_rules.rs"), rust).expect("write row_rules.rs");
}
