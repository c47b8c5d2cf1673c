"""Over TLS: sign in (the certificate is the test's own) and check the session cookie is
Secure as well as HttpOnly and SameSite=Strict. Environment as console_test.py."""

import os

from playwright.sync_api import sync_playwright

from common import run, launch, sign_in


def main():
    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        sign_in(page, os.environ["ADMIN_AKID"], os.environ["ADMIN_SECRET"])
        cookie = [c for c in context.cookies() if c["name"] == "kms_console"]
        assert cookie, context.cookies()
        c = cookie[0]
        assert c["secure"] and c["httpOnly"] and c["sameSite"] == "Strict", c
        assert c["path"] == "/console", c
        browser.close()


if __name__ == "__main__":
    run(main, "console TLS test")
