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
        "crm/v1/log.proto",
        "crm/v1/funnel.proto",
        "crm/v1/audit.proto",
        "crm/v1/churn.proto",
    ];
    let fds = protox::compile(files, [&proto_root])?;
    std::fs::write(out_dir.join("crm_descriptor.bin"), fds.encode_to_vec())?;

    // Messages and servers. A server decodes requests with `crate::codec::RequestCodec`:
    // a request that is not valid protobuf is the caller's error (INVALID_ARGUMENT),
    // where the stock codec says INTERNAL.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .codec_path("crate::codec::RequestCodec")
        .compile_fds(fds.clone())?;
    // Clients, with the stock codec (a reply that does not decode is INTERNAL, as gRPC
    // says) and the messages generated above.
    let client_dir = out_dir.join("client");
    std::fs::create_dir_all(&client_dir)?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .extern_path(".crm.v1", "crate::v1")
        .out_dir(&client_dir)
        .compile_fds(fds)?;
    Ok(())
}
