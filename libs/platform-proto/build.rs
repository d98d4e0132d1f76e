//! Compiles every `.proto` under `/proto` with `protox` (pure Rust: no system `protoc`)
//! into Rust types, tonic clients and servers, and an encoded descriptor set that keeps
//! custom options such as `google.api.http` for the gateway and for reflection.
//!
//! The descriptor set includes `buf/validate/validate.proto` (imported by the API
//! files): the `buf.validate` rules are read from it at run time, so no Rust types
//! are needed for that package and none are compiled.

use std::path::PathBuf;

/// The API packages, plus the google.rpc files the gateway needs to render errors.
const FILES: &[&str] = &[
    "users/v1/users.proto",
    "orders/v1/orders.proto",
    "users/v1/events.proto",
    "orders/v1/events.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "google/rpc/code.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    // Vendored googleapis files are imported as `google/...` from their own root.
    let vendor_root = proto_root.join("vendor");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut compiler = protox::Compiler::new([&proto_root, &vendor_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(FILES)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // `encode_file_descriptor_set` keeps extension options that the prost_types copy
    // below drops; the gateway routes from those.
    std::fs::write(
        out_dir.join("descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // `prost::Name` on every message: the request validator finds a message's
    // descriptor (and so its `buf.validate` rules) by its full name.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}
