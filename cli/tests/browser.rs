//! The HTML reports in a real browser: Debian's Chromium, headless. A page must load
//! without a single console message (the reports carry no scripts, so any message
//! is Chromium rejecting something, such as an SVG attribute with a negative width)
//! and its SVG must have content after parsing.
//!
//! Ignored by a plain `cargo test`; `scripts/test.sh` installs Chromium and runs
//! these with `TANDEM_CHROMIUM` set.

use std::path::Path;
use std::process::Command;

fn chromium() -> String {
    std::env::var("TANDEM_CHROMIUM")
        .expect("TANDEM_CHROMIUM must name a Chromium binary (scripts/test.sh installs and sets it)")
}

/// Loads `page` headless and returns (the DOM after load, the console lines).
fn load(page: &Path, profile: &Path) -> (String, Vec<String>) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

fn tandem(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env_remove("TANDEM_BUCKET")
        .env_remove("TANDEM_ROOT")
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs chromium: scripts/test.sh installs it and sets TANDEM_CHROMIUM"]
fn the_run_report_and_the_drill_report_render_cleanly_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    // A run with a failed child (kept, with the failure marked) and a clean one.
    let out = tandem(
        dir.path(),
        &[
            "loadtest",
            "--records",
            "4000",
            "--inject-failure",
            "process:17",
            "--report",
            "failed.html",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tandem(
        dir.path(),
        &["loadtest", "--records", "4000", "--report", "ok.html"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tandem(
        dir.path(),
        &[
            "dr-drill",
            "--products",
            "300",
            "--dir",
            "drill",
            "--report",
            "drill.html",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The drill draws an RTO bar per method and an RPO bar per failover method (the
    // only ones judged against the RPO target).
    for (page, must, min_rects) in [
        ("failed.html", "The run did not succeed: 1 child failed", 10),
        ("ok.html", "The run succeeded", 10),
        ("drill.html", "DR drill", 6 + 2),
    ] {
        let path = dir.path().join(page);
        let (dom, console) = load(&path, &dir.path().join(format!("profile-{page}")));
        assert!(console.is_empty(), "{page}: console messages: {console:#?}");
        assert!(dom.contains(must), "{page}: {must:?} not on the page");
        if page != "drill.html" {
            assert!(dom.contains("Where the time went"), "{page}: no time breakdown");
        }
        let rects = dom.matches("<rect").count();
        assert!(rects >= min_rects, "{page}: only {rects} SVG rects after parsing");
    }
}
