//! The canonicalizer against vectors produced by Python's own `json.dumps`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use base64::Engine as _;

#[test]
fn matches_python_json_dumps_byte_for_byte() {
    let text = include_str!("data/canonical_vectors.jsonl");
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let vector: serde_json::Value = serde_json::from_str(line).unwrap();
        let input: serde_json::Value = serde_json::from_str(vector["input"].as_str().unwrap()).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.decode(vector["canonical"].as_str().unwrap()).unwrap();
        let got = open131_wire::canonical::canonical_bytes(&input).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected), "input {}", vector["input"]);
        assert_eq!(got, expected);
        count += 1;
    }
    assert!(count >= 13, "vectors file lost lines: {count}");
}
