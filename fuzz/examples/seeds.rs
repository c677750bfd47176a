//! Writes the seed corpora to `fuzz/seeds/<target>/`, one file per input, named by content.
//! The seeds are deterministic (fixed keys, fixed claims), so running this again changes
//! nothing unless the seed sets in `src/lib.rs` change.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds

use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let sets = [
        ("verifier_token", latchkey_fuzz::verifier_seeds().1),
        ("issuer_token", latchkey_fuzz::issuer_seeds().1),
        ("token_endpoint", latchkey_fuzz::endpoint_seeds()),
    ];
    for (target, seeds) in sets {
        let dir = root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for seed in &seeds {
            let name: String = digest(&SHA256, seed).as_ref()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(dir.join(name), seed)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}
