//! The floor does the file work of a run and nothing else: every result linked into
//! place, the stage files in their shards, and a refused shape named.

use std::process::Command;

#[test]
fn the_floor_lays_out_a_run_and_reports_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let floor = || {
        Command::new(env!("CARGO_BIN_EXE_tandem-bench"))
            .args(["floor", "--records", "410", "--ids-per-node", "40", "--dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    // A second floor in the same directory starts from a clean run.
    let first = floor();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = floor();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["floor_s"].as_f64().unwrap() > 0.0, "{v}");
    let results = dir.path().join("bucket/floor-run/results");
    let mut names: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // ceil(410 / 40) children, each published once, and whole.
    assert_eq!(names.len(), 11);
    assert_eq!(names[10], "00010.parquet");
    let sizes: Vec<u64> = names
        .iter()
        .map(|n| std::fs::metadata(results.join(n)).unwrap().len())
        .collect();
    assert!(sizes.iter().all(|s| *s == sizes[0] && *s > 1000), "{sizes:?}");
    for stage in ["procure", "process"] {
        let f = dir.path().join(format!("vol/floor-run/{stage}/03/00003.parquet"));
        assert!(f.is_file(), "{}", f.display());
    }
}

#[test]
fn a_bad_shape_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem-bench"))
        .args(["floor", "--records", "0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--records"));
}
