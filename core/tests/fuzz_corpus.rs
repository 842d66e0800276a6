//! Replays every file of the committed fuzz corpus (fuzz/corpus/<target>/) through the very
//! functions the fuzz targets run (fuzz/common.rs), so `cargo test` covers what the fuzzer
//! found without needing libFuzzer or a nightly toolchain. A missing or empty corpus fails.

#[path = "../../fuzz/common.rs"]
mod common;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "the committed corpus {} has only {} files",
        dir.display(),
        files.len()
    );
    files
}

fn replay(target: &str, body: fn(&[u8])) {
    let files = corpus(target);
    for file in &files {
        let data = std::fs::read(file).expect("read corpus file");
        // A panic names the file, so the input can be fed to the fuzzer binary as is.
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok(),
            "{target}: corpus file {} failed",
            file.display()
        );
    }
    eprintln!("{target}: replayed {} corpus files", files.len());
}

#[test]
fn cookie_parse_corpus() {
    replay("cookie_parse", common::cookie_parse);
}

#[test]
fn request_path_corpus() {
    replay("request_path", common::request_path);
}
