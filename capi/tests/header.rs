//! The committed header is what cbindgen generates from the sources now.

#![allow(clippy::pedantic)]

#[test]
fn the_header_is_current() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new().with_crate(dir).with_config(config).generate().unwrap().write(&mut generated);
    let path = format!("{dir}/include/streamattn.h");
    if std::env::var_os("STREAMATTN_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/streamattn.h is not current: run `STREAMATTN_UPDATE_HEADER=1 cargo test --test header` in capi/"
    );
}
