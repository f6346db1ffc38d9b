//! The "Error codes" table of `docs/protocol.md` lists exactly the codes of [`ErrorCode`],
//! each with its true `retryable`: no code the server never sends, none it sends missing.

use std::collections::BTreeMap;

use bbrt_protocol::wire::ErrorCode;

/// Code → retryable, from the table under `## Error codes` in docs/protocol.md.
fn documented() -> BTreeMap<String, bool> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let text = std::fs::read_to_string(path).expect("docs/protocol.md exists");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Error codes\n"))
        .expect("docs/protocol.md has an Error codes section");
    // The section's first table only: "What clients read" below it is another table.
    let section = section
        .split("\n### ")
        .next()
        .expect("split yields one part");
    let mut codes = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let code = cells[1].trim_matches('`').to_owned();
        let retryable = match cells[2] {
            "yes" => true,
            "no" => false,
            other => panic!("retryable must be yes or no, not {other:?}: {row}"),
        };
        assert!(
            codes.insert(code, retryable).is_none(),
            "listed twice: {row}"
        );
    }
    codes
}

#[test]
fn the_docs_list_every_error_code_and_no_other() {
    let typed: BTreeMap<String, bool> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), c.retryable()))
        .collect();
    assert_eq!(typed.len(), ErrorCode::ALL.len(), "codes are unique");
    let docs = documented();
    for (code, retryable) in &typed {
        assert_eq!(
            docs.get(code),
            Some(retryable),
            "docs/protocol.md on `{code}`"
        );
    }
    for code in docs.keys() {
        assert!(
            typed.contains_key(code),
            "docs/protocol.md lists `{code}`, bbrt has no such code"
        );
    }
}
