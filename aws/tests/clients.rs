//! Every AWS SDK client the workspace builds outside tests goes through
//! `tandem_aws::instrument!`, so the tests record every call it makes and check it
//! against the IAM contract: a client built any other way would make calls no test
//! sees.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file before its unit tests.
fn non_test_code(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    }
}

#[test]
fn every_sdk_client_outside_tests_is_instrumented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in ["aws", "dr", "lambdas", "cli", "core"] {
        sources(&root.join(krate).join("src"), &mut files);
    }
    // Test set-up and the fake account build their own clients on purpose.
    let exempt = ["fixtures.rs", "fake_aws.rs"];
    let mut problems = Vec::new();
    let mut seen = 0;
    for file in files {
        if exempt.iter().any(|e| file.to_string_lossy().contains(e)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = non_test_code(&text);
        for (at, _) in code.match_indices("Client::new(") {
            // An SDK client (`Client::new`, `aws_sdk_s3::Client::new`), not another
            // type whose name ends in Client (`ApiClient::new`).
            if code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let line = code[..at].lines().count();
            problems.push(format!(
                "{}:{line}: Client::new builds a client nothing records",
                file.display()
            ));
        }
        for (at, _) in code.match_indices("Client::from_conf(") {
            seen += 1;
            // The enclosing function up to the end of this statement.
            let end = code[at..].find(';').map_or(code.len(), |e| at + e);
            let function = &code[code[..at].rfind("fn ").unwrap_or(0)..end];
            if !function.contains("instrument!(") {
                let line = code[..at].lines().count();
                problems.push(format!(
                    "{}:{line}: a client built without tandem_aws::instrument!",
                    file.display()
                ));
            }
        }
    }
    assert!(
        seen >= 6,
        "found only {seen} client constructions: is the scan looking in the right place?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
