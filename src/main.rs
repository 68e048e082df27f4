// The request path allocates a little everywhere (headers, JSON values, ids); glibc's
// malloc spent a fifth of the server's CPU on it under load, mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    firehook::cli::main()
}
