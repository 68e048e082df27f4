fn main() -> anyhow::Result<()> {
    firehook::cli::main()
}
