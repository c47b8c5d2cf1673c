"""An AWS managed key in the console: listed on the AWS managed keys page (not with the
customer managed keys), its page shows KeyManager AWS, its fixed policy read-only and no
actions that change it. Environment as console_test.py, plus MANAGED_KEY (the key id of
alias/aws/s3) and CUSTOMER_KEY; writes $OUT/managed.json."""

import json
import os

from playwright.sync_api import expect, sync_playwright

from common import run, BASE, launch, sign_in


def main():
    managed = os.environ["MANAGED_KEY"]
    customer = os.environ["CUSTOMER_KEY"]
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_context().new_page()
        sign_in(page, os.environ["ADMIN_AKID"], os.environ["ADMIN_SECRET"])
        expect(page.locator("table.grid")).to_contain_text(customer)
        expect(page.locator("table.grid")).not_to_contain_text(managed)
        page.get_by_role("link", name="AWS managed keys").click()
        row = page.locator("tr", has_text=managed)
        expect(row).to_contain_text("alias/aws/s3")
        expect(row).to_contain_text("Enabled")
        expect(page.locator("table.grid")).not_to_contain_text(customer)
        row.get_by_role("link").first.click()
        expect(page.locator(".crumbs")).to_contain_text("AWS managed keys")
        expect(page.locator(".props-grid")).to_contain_text("AWS")
        expect(page.locator("#description")).to_contain_text("Default master key that protects my S3 objects")
        for absent in ["#disable", "#schedule-deletion", "#save-policy"]:
            expect(page.locator(absent)).to_have_count(0)
        expect(page.locator("#managed-note")).to_be_visible()
        policy = page.locator("#policy").input_value()
        assert "s3.us-east-1.amazonaws.com" in policy, policy
        page.locator("#tab-rotation").click()
        expect(page.locator("#rotation-status")).to_have_text("Enabled")
        for absent in ["#rotation-enable", "#rotation-disable", "#rotate-now"]:
            expect(page.locator(absent)).to_have_count(0)
        page.locator("#tab-tags").click()
        expect(page.locator("#add-tag")).to_have_count(0)
        page.locator("#tab-aliases").click()
        expect(page.locator("table.grid")).to_contain_text("alias/aws/s3")
        expect(page.locator("#add-alias")).to_have_count(0)
        browser.close()
    with open(os.path.join(os.environ["OUT"], "managed.json"), "w") as f:
        json.dump({"policy": policy}, f)


if __name__ == "__main__":
    run(main, "console AWS managed key test")
