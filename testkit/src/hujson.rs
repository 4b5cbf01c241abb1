//! HuJSON text made plain JSON without the parser: comments and trailing commas blanked out,
//! so `serde_json` can read the same text at the same offsets. Written apart from aclc's
//! parser on purpose, so comparing the two cross-checks it.

/// `text` (valid HuJSON) with comments and trailing commas replaced by spaces: plain JSON at
/// the same offsets. Unclosed strings and comments run to the end instead of panicking.
pub fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    // A comma followed so far only by whitespace and comments.
    let mut comma: Option<usize> = None;
    while i < b.len() {
        match b[i] {
            b'"' => {
                comma = None;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                for byte in &mut out[i..end] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
            }
            b',' => {
                comma = Some(i);
                i += 1;
            }
            b']' | b'}' => {
                if let Some(at) = comma.take() {
                    out[at] = b' ';
                }
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            _ => {
                comma = None;
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("only ASCII was replaced")
}

#[cfg(test)]
mod tests {
    use super::strip;

    #[test]
    fn comments_and_trailing_commas_become_spaces() {
        let text = "{\"a\": [1, 2,], // c\n /* d */ \"b\": \"//x,]\",}";
        let json = strip(text);
        assert_eq!(json.len(), text.len());
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value, serde_json::json!({"a": [1, 2], "b": "//x,]"}));
    }
}
