//! Compact JSON of an answer's `Value`, byte for byte what `serde_json::to_writer` writes, with
//! a fast path for strings that need no escaping. Most of an answer's bytes are base64 (a
//! ciphertext, a plaintext, a signature), which never needs escaping; serde_json looks every
//! byte up in its escape table, this checks eight bytes at a time and copies the string whole.

use std::io::{self, Write};

use serde_json::Value;

/// Write `v` as compact JSON (as `serde_json::to_writer` would).
pub fn write<W: Write>(out: &mut W, v: &Value) -> io::Result<()> {
    match v {
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write(out, item)?;
            }
            out.write_all(b"]")
        }
        Value::Object(members) => {
            out.write_all(b"{")?;
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_str(out, name)?;
                out.write_all(b":")?;
                write(out, value)?;
            }
            out.write_all(b"}")
        }
        scalar => serde_json::to_writer(out, scalar).map_err(io::Error::from),
    }
}

fn write_str<W: Write>(out: &mut W, s: &str) -> io::Result<()> {
    if needs_escape(s.as_bytes()) {
        return serde_json::to_writer(out, s).map_err(io::Error::from);
    }
    out.write_all(b"\"")?;
    out.write_all(s.as_bytes())?;
    out.write_all(b"\"")
}

/// Does any byte need escaping in a JSON string (a control character, `"` or `\`)?
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Exact "is any byte of w below n" (n <= 128) and "is any byte zero" word tests.
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH != 0;
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(word);
        let w = u64::from_le_bytes(b);
        if below(w, 0x20)
            || zero(w ^ (ONES * u64::from(b'"')))
            || zero(w ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_what_serde_json_writes() {
        let mut strings: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "A".repeat(4096),
            "é ü \u{7f} \u{10348}".into(),
        ];
        // Every byte that needs escaping, at every offset of a word and in the tail.
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\t'] {
            for at in 0..19 {
                let mut s = "x".repeat(19);
                s.insert(at, special);
                strings.push(s);
            }
        }
        for s in &strings {
            assert_eq!(
                needs_escape(s.as_bytes()),
                serde_json::to_string(s).unwrap() != format!("\"{s}\""),
                "{s:?}"
            );
        }
        let v = json!({
            "CiphertextBlob": "A".repeat(5000), "KeyId": "arn:aws:kms:k", "n": 12, "f": 1.5,
            "t": true, "z": null, "a": [1, "two", {"b": "c\"d"}, []], "o": {}, "s": strings,
        });
        let mut fast = Vec::new();
        write(&mut fast, &v).unwrap();
        assert_eq!(fast, serde_json::to_vec(&v).unwrap());
    }
}
