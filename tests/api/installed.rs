//! The binary on its own, as `cargo install` or a copy to /usr/local/bin leaves it: copied out
//! of the build and run from another folder, with the source tree out of its sight where the
//! machine allows, it serves the page and every asset from the copy built into it; and
//! `--assets-dir` still overrides that copy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::flags::copy_dir;
use crate::health::http_bytes;
use crate::process::{free_address, pairchat_at, Server};

/// The source tree's assets: what the binary was built with.
fn source_assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// Every file under `dir`, as paths relative to it with `/` between folders.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("inside");
                let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
                files.push(parts.join("/"));
            }
        }
    }
    files.sort();
    files
}

/// The Content-Type a file is served with, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        _ => panic!("{path}: say here what type it is served with"),
    }
}

/// A fresh folder holding only a copy of the binary.
fn installed(folder: &Path) -> PathBuf {
    let copy = folder.join("pairchat");
    std::fs::copy(env!("CARGO_BIN_EXE_pairchat"), &copy).expect("copy the binary");
    copy
}

/// A command that runs `program` with the source tree hidden from it (the empty folder
/// `empty` mounted over it, in a mount namespace of the process's own), where the machine
/// lets a test do that (root and util-linux's `unshare`); `program` as it is elsewhere.
fn without_the_source_tree(program: &Path, empty: &Path) -> Command {
    let source = env!("CARGO_MANIFEST_DIR");
    let can_hide = Command::new("unshare")
        .args(["-m", "mount", "--bind"])
        .args([empty, Path::new(source)])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if can_hide {
        let mut cmd = pairchat_at(Path::new("unshare"));
        cmd.args([
            "-m",
            "sh",
            "-c",
            r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#,
        ])
        .arg("sh")
        .args([empty, Path::new(source), program]);
        cmd
    } else {
        eprintln!(
            "the source tree cannot be hidden here (needs root and unshare): it stays in sight"
        );
        pairchat_at(program)
    };
    // Its key file, like its database, where it runs.
    cmd.env_remove("PAIRCHAT_SECRET_KEY_FILE");
    cmd
}

/// `GET path`: the status, the lower-cased head and the body.
async fn get(server: &Server, path: &str) -> (u16, String, Vec<u8>) {
    let address: SocketAddr = server.address.parse().expect("address");
    http_bytes(address, path, "").await
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The `/assets/…` paths a page names in `src` and `href` attributes.
fn assets_named_in(html: &str) -> Vec<String> {
    html.split(['"', '\''])
        .filter_map(|piece| piece.strip_prefix("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[actix_rt::test]
async fn a_copied_binary_run_elsewhere_serves_the_page_and_every_asset_from_itself() {
    let bin = tempfile::tempdir().expect("folder for the binary");
    let cwd = tempfile::tempdir().expect("folder to run in");
    let data = tempfile::tempdir().expect("folder for the database");
    let empty = tempfile::tempdir().expect("empty folder");
    let program = installed(bin.path());
    let address = free_address();
    let mut cmd = without_the_source_tree(&program, empty.path());
    let db_url = format!("sqlite://{}", data.path().join("chat.db").display());
    cmd.current_dir(cwd.path())
        .args(["--bind", &address, "--database-url", &db_url]);
    let server = Server::spawn(cmd, address);

    let mut named = Vec::new();
    for page in ["/", "/widget"] {
        let (status, head, body) = get(&server, page).await;
        assert_eq!(status, 200, "{page}: {head}");
        assert_eq!(header(&head, "content-type"), Some(content_type(".html")));
        named.extend(assets_named_in(&String::from_utf8_lossy(&body)));
    }
    let files = files_under(&source_assets());
    for asset in &named {
        assert!(files.contains(asset), "the page names /assets/{asset}");
    }
    assert!(named.iter().any(|a| a == "js/chat.js"), "{named:?}");
    assert!(named.iter().any(|a| a.ends_with(".css")), "{named:?}");

    let urls = files.iter().map(|f| (format!("/assets/{f}"), f.clone()));
    for (url, file) in urls.chain([("/embed.js".to_owned(), "embed.js".to_owned())]) {
        let (status, head, body) = get(&server, &url).await;
        assert_eq!(status, 200, "{url}: {head}");
        assert_eq!(
            header(&head, "content-type"),
            Some(content_type(&file)),
            "{url}"
        );
        let source = std::fs::read(source_assets().join(&file)).expect("the source's copy");
        assert!(body == source, "{url}: not the bytes of assets/{file}");
        assert_eq!(
            header(&head, "cache-control"),
            Some("public, max-age=300"),
            "{url}"
        );
        assert!(header(&head, "etag").is_some(), "{url}: {head}");
        assert!(header(&head, "last-modified").is_some(), "{url}: {head}");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    }
    let (status, _, _) = get(&server, "/assets/js/nothing-here.js").await;
    assert_eq!(status, 404);
    // It made what it needed where it runs, and nowhere near the binary.
    assert!(cwd.path().join("pairchat.key").exists(), "./pairchat.key");
    assert_eq!(std::fs::read_dir(bin.path()).expect("bin").count(), 1);
}

#[actix_rt::test]
async fn an_assets_dir_is_served_instead_of_the_copy_built_in() {
    let bin = tempfile::tempdir().expect("folder for the binary");
    let cwd = tempfile::tempdir().expect("folder to run in");
    let empty = tempfile::tempdir().expect("empty folder");
    let own = cwd.path().join("my-assets");
    copy_dir(&source_assets(), &own);
    let chat_js = "// the site owner's own chat.js\n";
    std::fs::write(own.join("js/chat.js"), chat_js).expect("chat.js");
    std::fs::write(own.join("embed.js"), "// and embed.js\n").expect("embed.js");
    let program = installed(bin.path());
    let address = free_address();
    let mut cmd = without_the_source_tree(&program, empty.path());
    cmd.current_dir(cwd.path())
        .args(["--bind", &address, "--assets-dir", "my-assets"])
        .args(["--database-url", "sqlite://chat.db"]);
    let server = Server::spawn(cmd, address);

    for (url, body) in [
        ("/assets/js/chat.js", chat_js),
        ("/embed.js", "// and embed.js\n"),
    ] {
        let (status, head, served) = get(&server, url).await;
        assert_eq!((status, served.as_slice()), (200, body.as_bytes()), "{url}");
        assert_eq!(header(&head, "content-type"), Some(content_type(url)));
        assert_eq!(header(&head, "cache-control"), Some("public, max-age=300"));
    }
    // The files left as they were are served with the types the built-in copy has.
    let (status, head, served) = get(&server, "/assets/css/chat.css").await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), Some(content_type(".css")));
    let source = std::fs::read(source_assets().join("css/chat.css")).expect("chat.css");
    assert!(served == source, "chat.css from the folder");
}
