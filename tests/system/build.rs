//! Compiles the test-only inventory proto: Rust server code for the fake team backend,
//! and a descriptor set file that the gateway loads from its configuration (the gateway
//! itself is never built with it).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let protos = manifest.join("protos");
    let shared = manifest.join("../../proto").canonicalize()?;
    println!("cargo:rerun-if-changed={}", protos.display());

    let vendor = shared.join("vendor");
    let mut compiler = protox::Compiler::new([&protos, &shared, &vendor])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(["inventory/v1/inventory.proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("inventory.binpb"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        // The fake backend's own `HttpBody` (src/lib.rs), rather than all of google.api.
        .extern_path(".google.api.HttpBody", "crate::HttpBody")
        .build_client(false)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
