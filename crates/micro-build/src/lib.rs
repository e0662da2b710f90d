//! # micro-build
//!
//! The `build.rs` helper for a Micro service crate. It compiles the crate's `.proto` files with
//! [protox](https://docs.rs/protox) — a protobuf compiler written in Rust, so **no `protoc`
//! is needed** — generates the tonic client and server code, and writes the encoded file
//! descriptor set next to it. The service embeds that set with `micro::include_descriptors!()`
//! so it can register every endpoint with its request and response schema and serve gRPC
//! reflection.
//!
//! ```no_run
//! // build.rs, inside `fn main`:
//! micro_build::compile_protos(&["proto/helloworld.proto"], &["proto"]).unwrap();
//! ```
//!
//! ```ignore
//! // src/main.rs
//! pub mod pb {
//!     micro::include_proto!("helloworld");
//! }
//! const DESCRIPTORS: &[u8] = micro::include_descriptors!();
//! ```
//!
//! `google/api/annotations.proto` is bundled: a proto can import it and annotate methods with
//! `option (google.api.http) = { get: "/v1/hello/{name}" };`, and the API gateway routes those
//! paths first.

use std::path::{Path, PathBuf};

/// The file, under `OUT_DIR`, that holds the encoded `FileDescriptorSet`.
pub const DESCRIPTOR_FILE: &str = "micro_descriptors.bin";

/// Why a build step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `.proto` file did not compile (the message names the file and line).
    #[error("failed to compile protos: {0}")]
    Compile(#[from] protox::Error),
    /// Code generation or writing the descriptor set failed.
    #[error("failed to write generated code to {path}")]
    Write {
        /// Where we tried to write.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `OUT_DIR` is not set: this function only runs inside a build script.
    #[error("OUT_DIR is not set; call micro_build from a build.rs")]
    NoOutDir,
}

/// The protos every service may import, by import path.
const BUNDLED: &[(&str, &str)] = &[
    (
        "google/api/http.proto",
        include_str!("../proto/google/api/http.proto"),
    ),
    (
        "google/api/annotations.proto",
        include_str!("../proto/google/api/annotations.proto"),
    ),
];

/// Compiles `protos` (searching imports in `includes`), generates client and server code, and
/// writes the descriptor set to `$OUT_DIR/micro_descriptors.bin`.
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<(), Error> {
    Builder::new().compile(protos, includes)
}

/// Options for [`compile_protos`].
#[derive(Debug, Clone)]
pub struct Builder {
    client: bool,
    server: bool,
    out_dir: Option<PathBuf>,
    extern_paths: Vec<(String, String)>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Client and server code, written to `OUT_DIR`.
    pub fn new() -> Self {
        Self {
            client: true,
            server: true,
            out_dir: None,
            extern_paths: Vec::new(),
        }
    }

    /// Whether to generate clients (default true).
    pub fn build_client(mut self, yes: bool) -> Self {
        self.client = yes;
        self
    }

    /// Whether to generate servers (default true).
    pub fn build_server(mut self, yes: bool) -> Self {
        self.server = yes;
        self
    }

    /// Writes to `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Uses already-generated Rust types for a proto path (as `prost_build::Config::extern_path`).
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Compiles the protos and writes code and descriptors.
    pub fn compile(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or(Error::NoOutDir)?),
        };
        // Our own protos come last, so `google/api/annotations.proto` resolves without the
        // user vendoring it, and a user's copy wins.
        // They are compiled into this crate and written out per build, so a build never
        // depends on where micro-build's own sources were (a shared target directory may hold
        // a micro-build compiled from a checkout that is gone).
        let bundled = out_dir.join("micro-build-include");
        for (name, text) in BUNDLED {
            let path = bundled.join(name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| Error::Write {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            // Rewritten only when different: an unchanged file keeps its time, so cargo does
            // not see the build's own output as a changed input.
            if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
                std::fs::write(&path, text).map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        let mut compiler = protox::Compiler::new(
            includes
                .iter()
                .map(AsRef::as_ref)
                .chain(std::iter::once(bundled.as_path())),
        )?;
        compiler.include_imports(true).include_source_info(true);
        compiler.open_files(protos.iter().map(AsRef::as_ref))?;
        for file in compiler.files() {
            // The bundled protos are this crate's, not inputs of the build: watching files the
            // build script itself writes would make every build rerun it and recompile.
            if let Some(path) = file.path().filter(|p| !Path::new(p).starts_with(&bundled)) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let set = compiler.file_descriptor_set();

        let descriptor_path = out_dir.join(DESCRIPTOR_FILE);
        // Encoded by protox itself so custom options (`google.api.http`) survive.
        std::fs::write(&descriptor_path, compiler.encode_file_descriptor_set()).map_err(
            |source| Error::Write {
                path: descriptor_path,
                source,
            },
        )?;

        let mut generator = tonic_prost_build::configure()
            .build_client(self.client)
            .build_server(self.server)
            .out_dir(&out_dir);
        for (proto, rust) in &self.extern_paths {
            generator = generator.extern_path(proto, rust);
        }
        generator.compile_fds(set).map_err(|source| Error::Write {
            path: out_dir,
            source,
        })
    }
}
