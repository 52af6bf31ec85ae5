"""The browser fixture itself: a page loads and its console errors are collected."""


def test_a_page_loads_and_console_errors_are_collected(browser_page, tmp_path):
    page_file = tmp_path / "page.html"
    page_file.write_text("<h1>linlab</h1><script>console.error('boom')</script>")
    browser_page.goto(page_file.as_uri())
    assert browser_page.inner_text("h1") == "linlab"
    assert browser_page.console_errors == ["boom"]
