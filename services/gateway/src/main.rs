//! The `gateway` binary: serves the HTTP/JSON edge, or prints its OpenAPI document
//! (`gateway --help`); everything but the edge itself is `platform-kernel`'s.

/// Every request allocates and frees many small buffers on whichever worker polls it;
/// jemalloc's thread caches spend less CPU on them than the system allocator's
/// locked arenas, for two or three MiB more at rest (`make bench`, edge suite).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform_kernel::run::<gateway::Gateway>().await
}
