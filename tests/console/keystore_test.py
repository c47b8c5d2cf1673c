"""A custom key store through the console: connect it, create a key in it with the wizard,
disconnect it. Environment as console_test.py, plus STORE_ID; writes $OUT/keystore.json."""

import json
import os

from playwright.sync_api import expect, sync_playwright

from common import run, BASE, key_id_from_url, launch, sign_in


def main():
    store = os.environ["STORE_ID"]
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_context().new_page()
        sign_in(page, os.environ["ADMIN_AKID"], os.environ["ADMIN_SECRET"])
        page.get_by_role("link", name="Custom key stores").click()
        row = page.locator("tr", has_text=store)
        expect(row).to_contain_text("DISCONNECTED")
        row.get_by_role("button", name="Connect").click()
        expect(page.locator(".flash-ok")).to_contain_text(store)
        expect(page.locator("tr", has_text=store)).to_contain_text("CONNECTED")

        page.goto(BASE + "/console/create?step=1")
        page.locator("input[name=key_type][value=SYMMETRIC]").check()
        page.get_by_text("Advanced options").click()
        page.locator("input[name=origin][value=AWS_CLOUDHSM]").check()
        page.locator("#custom_key_store_id").select_option(store)
        page.locator("#next").click()
        expect(page.get_by_role("heading", name="Add labels")).to_be_visible()
        for _ in range(3):
            page.locator("#next").click()
        expect(page.get_by_role("heading", name="Review")).to_be_visible()
        expect(page.locator("table.props")).to_contain_text("AWS CloudHSM")
        page.locator("#finish").click()
        expect(page.locator(".flash-ok")).to_contain_text("was created")
        key = key_id_from_url(page)
        page.locator("#tab-crypto").click()
        expect(page.locator("table.props")).to_contain_text(store)

        page.get_by_role("link", name="Custom key stores").click()
        page.locator("tr", has_text=store).get_by_role("button", name="Disconnect").click()
        expect(page.locator("tr", has_text=store)).to_contain_text("DISCONNECTED")
        browser.close()
    with open(os.path.join(os.environ["OUT"], "keystore.json"), "w") as f:
        json.dump({"key": key}, f)


if __name__ == "__main__":
    run(main, "console key store test")
