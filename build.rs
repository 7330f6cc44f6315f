//! Rebuilds when a file is added to or removed from `assets/`. rust-embed compiles the files in
//! with `include_bytes!`, so cargo notices a changed file but not a new one.

fn main() {
    println!("cargo:rerun-if-changed=assets");
}
