//! The close-code tables of `docs/protocol.md` and `docs/server.md` list exactly the codes of
//! [`CloseCode`]: no code the server never sends, none it sends missing.

use std::collections::BTreeSet;

use bbrt_protocol::wire::CloseCode;

/// The codes in the first column of the table under `## Close codes` in `doc`.
fn documented(doc: &str) -> BTreeSet<u16> {
    let path = format!("{}/../../docs/{doc}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the doc exists");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Close codes\n"))
        .unwrap_or_else(|| panic!("{doc} has a Close codes section"));
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| ")?.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn the_docs_list_every_close_code_and_no_other() {
    let typed: BTreeSet<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(typed.len(), CloseCode::ALL.len(), "numbers are unique");
    for doc in ["protocol.md", "server.md"] {
        assert_eq!(documented(doc), typed, "docs/{doc}");
    }
}

#[test]
fn reasons_fit_a_close_frame() {
    for code in CloseCode::ALL {
        assert!(code.reason().len() <= 123, "{code:?}");
        assert!(!code.reason().is_empty(), "{code:?}");
    }
}
