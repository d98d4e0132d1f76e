//! Compiles the echo service with protox (no system `protoc`) and keeps its encoded
//! descriptor set, annotations included, for the gateway to load.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("proto");
    let vendor_root = manifest_dir.join("../../proto/vendor").canonicalize()?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut compiler = protox::Compiler::new([&proto_root, &vendor_root])?;
    compiler.include_imports(true);
    compiler.open_files(["echo/v1/echo.proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("echo_descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure().compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
