// `sqlx::migrate!` embeds the migration files at compile time, but Cargo does not know a new
// file in `migrations/` should trigger a rebuild. This tells it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
