"""What the console's browser tests share: the server's address, the browser, sign-in."""

import os
import re
import sys

from playwright.sync_api import expect

BASE = os.environ["CONSOLE_URL"].rstrip("/")


def launch(p):
    """Debian's Chromium, headless (Playwright's own browser download is not used)."""
    return p.chromium.launch(
        executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        headless=True,
        args=["--no-sandbox"],
    )


def sign_in(page, akid, secret):
    page.goto(BASE + "/console/")
    expect(page).to_have_url(re.compile(r"/console/signin$"))
    page.get_by_label("Access key ID").fill(akid)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("Customer managed keys"))).to_be_visible()


def key_id_from_url(page):
    m = re.search(r"/console/keys/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})", page.url)
    assert m, page.url
    return m.group(1)


def run(main, name):
    """Run a test's main; a failure is printed for the Rust test's message, then raised."""
    try:
        main()
    except Exception as e:
        print(f"{name} FAILED: {e!r}", file=sys.stderr)
        raise
    print(f"{name}: ok")
