//! Compiles `proto/crm/v1/*.proto` with protox (pure Rust: no system `protoc`), writes the
//! encoded `FileDescriptorSet` for gRPC reflection and generates the prost/tonic code.

use std::path::PathBuf;

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let files = [
        "crm/v1/types.proto",
        "crm/v1/commands.proto",
        "crm/v1/queries.proto",
        "crm/v1/admin.proto",
    ];
    let fds = protox::compile(files, [&proto_root])?;
    std::fs::write(out_dir.join("crm_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
