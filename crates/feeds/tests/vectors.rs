//! The pseudonymisation vectors the providers' own clients are checked
//! against (`deploy/providers/pseudonym-vectors.json`, computed
//! independently with Python's `hmac`): this implementation must agree with
//! every one, errors included.

#![allow(clippy::unwrap_used, clippy::panic)]

use epitrace_feeds::{IdKind, PseudonymKey, Pseudonymizer};

#[test]
fn the_rust_pseudonymizer_agrees_with_the_providers_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/providers/pseudonym-vectors.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10);
    let (mut ok, mut refused) = (0, 0);
    for v in vectors {
        let key = v["key"].as_str().unwrap();
        let key: Vec<u8> = (0..key.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&key[i..i + 2], 16).unwrap())
            .collect();
        let p = Pseudonymizer::new(PseudonymKey::new(key).unwrap());
        let kind = match v["kind"].as_str().unwrap() {
            "msisdn" => IdKind::Msisdn,
            "card" => IdKind::Card,
            other => panic!("kind {other}"),
        };
        let raw = v["raw"].as_str().unwrap();
        match (p.subject(kind, raw), v.get("pseudonym")) {
            (Ok(s), Some(want)) => {
                assert_eq!(s.to_hex(), want.as_str().unwrap(), "{raw}");
                assert_eq!(
                    kind.normalise(raw).unwrap(),
                    v["normalised"].as_str().unwrap()
                );
                ok += 1;
            }
            (Err(e), None) => {
                assert_eq!(e, v["error"].as_str().unwrap(), "{raw}");
                refused += 1;
            }
            (got, _) => panic!("{raw}: {got:?} against {v}"),
        }
    }
    assert!(
        ok >= 8 && refused >= 3,
        "{ok} pseudonyms, {refused} refusals"
    );
}
