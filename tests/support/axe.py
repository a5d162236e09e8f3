"""axe-core in Chromium: the accessibility rules a page of the site must pass.

axe-core is pinned in frontend/package.json and copied by `make vendor` to tests/vendor/, not
among the static files the site serves: only tests use it. It is handed to the page by
Playwright's evaluation (the DevTools protocol), which the page's Content-Security-Policy
does not govern, so the page runs under its real policy, unchanged.
"""

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"

# Every rule of axe-core's WCAG 2.0, 2.1 and 2.2 A and AA sets and its best practices (all
# but the experimental ones, which is axe's default). Violations only: "incomplete" results
# are the checks axe leaves to a person.
RUN = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations.map((rule) => ({
    id: rule.id,
    impact: rule.impact,
    help: rule.help,
    nodes: rule.nodes.map((node) => node.target.join(" ")),
  }));
}"""


def axe_violations(page: Page) -> list[str]:
    """What axe-core finds wrong with ``page`` as it stands: one line a rule, with the
    elements that break it."""
    if not page.evaluate("() => typeof axe === 'object'"):
        page.evaluate(f"() => {{ {AXE.read_text(encoding='utf-8')} }}")
    found: list[dict[str, Any]] = page.evaluate(RUN)
    return [
        f"{rule['id']} ({rule['impact']}): {rule['help']}: {', '.join(rule['nodes'])}"
        for rule in found
    ]
