"""The summary pane and an approved summary: the approved text with its approver and time,
the machine text one click away, a newer machine summary shown after it as not approved,
and unsupported sentences marked inside the editor."""

from __future__ import annotations

APPROVED_TEXT = "Problems:\n- Asthma, on albuterol as needed (checked with the mother).\n"
UNSUPPORTED = "Started on warfarin for a clot in the leg."


def _summary(summary_id: str = "sm_a", **approval: object):  # noqa: ANN202
    from noteward.core.models import SourceSpan, Summary, SummarySentence

    return Summary(
        patient="pt_x",
        model={"id": "smollm2-135m-clinical", "sha256": "cd" * 32},
        summary_id=summary_id,
        covers={"note_ids": ["nt_a", "nt_b"], "date_range": ["2013-08-28", "2022-09-14"]},
        sentences=[
            SummarySentence(
                "Asthma, on albuterol as needed.",
                "Problems",
                [SourceSpan("nt_a", 0, 30)],
                1.0,
                True,
                date="2022-09-14",
                origin="extract",
            ),
            SummarySentence(
                UNSUPPORTED, "Medications", [], 0.1, False, date="2022-09-14", origin="model"
            ),
        ],
        **approval,  # type: ignore[arg-type]
    )


def _pane(qtbot, services, latest):  # noqa: ANN001, ANN202
    from noteward.ui.summary_pane import SummaryPane

    pane = SummaryPane(services)
    qtbot.addWidget(pane)
    pane.show()
    pane.set_patient("pt_x", latest=latest)
    qtbot.waitUntil(lambda: pane.settled and len(pane.views) == 2, timeout=5_000)
    return pane


def test_an_approved_summary_shows_its_text_approver_and_time_with_the_machine_text_one_click_away(
    qtbot,
    services,  # noqa: ANN001
) -> None:
    approved = _summary(
        approved_text=APPROVED_TEXT, approved_by="dr_lee", approved_at="2026-12-07T03:10:00+00:00"
    )
    pane = _pane(qtbot, services, approved)
    assert pane.approved_box.isVisible()
    assert pane.approved_view.text() == APPROVED_TEXT
    assert pane.approved_label.text().startswith("Approved by dr_lee, 2026-12-0")  # local time zone
    assert not pane.newer_label.isVisible()
    # the machine sentences are hidden behind one click, and back
    assert not any(v.isVisible() for v in pane.views)
    assert pane.machine_text_button.text().replace("&", "") == "Show machine text"
    pane.machine_text_button.click()
    assert pane.views[0].isVisible() and pane.views[0].text().endswith(
        "Asthma, on albuterol as needed."
    )
    assert pane.machine_text_button.text().replace("&", "") == "Hide machine text"
    pane.machine_text_button.click()
    assert not pane.views[0].isVisible()
    # editing again starts from the approved text
    assert pane.summary_text() == APPROVED_TEXT


def test_an_approval_from_before_approvers_were_recorded_says_so(qtbot, services) -> None:  # noqa: ANN001
    old = _summary(approved_text=APPROVED_TEXT, approved_at="2024-02-01T10:00:00+00:00")
    pane = _pane(qtbot, services, old)
    assert "approver not recorded" in pane.approved_label.text()
    assert pane.approved_view.text() == APPROVED_TEXT


def test_a_newer_machine_summary_is_shown_after_the_approved_one_as_not_approved(
    qtbot, services
) -> None:  # noqa: ANN001
    earlier = _summary(
        "sm_old",
        approved_text=APPROVED_TEXT,
        approved_by="dr_lee",
        approved_at="2026-12-07T03:10:00+00:00",
    )
    newer = _summary("sm_new", earlier_approved=earlier)
    pane = _pane(qtbot, services, newer)
    # the approved summary stays on screen, first; the newer one follows, marked not approved
    assert pane.approved_box.isVisible() and pane.approved_view.text() == APPROVED_TEXT
    assert "dr_lee" in pane.approved_label.text()
    assert pane.newer_label.isVisible() and "NOT approved" in pane.newer_label.text()
    outer = pane.body.layout()
    assert (
        outer.indexOf(pane.approved_box)
        < outer.indexOf(pane.newer_label)
        < outer.indexOf(pane.machine_box)
    )
    assert pane.views[0].isVisible()  # the newer machine sentences are shown
    assert pane.summary is not None and pane.summary.summary_id == "sm_new"
    # the approved summary's own machine text is one click away
    assert not pane.approved_machine_text.isVisible()
    pane.machine_text_button.click()
    assert pane.approved_machine_text.isVisible()
    assert "Asthma, on albuterol as needed." in pane.approved_machine_text.text()
    # approving edits the newer summary, offered with its unsupported sentence marked
    from noteward.core.models import UNSUPPORTED_MARK

    assert f"- {UNSUPPORTED_MARK}{UNSUPPORTED}" in pane.summary_text().splitlines()


def test_unsupported_sentences_are_marked_and_highlighted_inside_the_editor(
    qtbot, services
) -> None:  # noqa: ANN001
    from noteward.core.models import UNSUPPORTED_MARK

    pane = _pane(qtbot, services, _summary())
    dialog = pane.approval_dialog()
    qtbot.addWidget(dialog)
    text = dialog.editor.toPlainText()
    assert f"- {UNSUPPORTED_MARK}{UNSUPPORTED}" in text.splitlines()
    assert "- Asthma, on albuterol as needed." in text.splitlines()
    # the marked line is highlighted, and only it
    assert dialog.unsupported_lines() == [f"- {UNSUPPORTED_MARK}{UNSUPPORTED}"]
    sel = dialog.editor.extraSelections()[0]
    assert sel.format.background().color() == dialog.UNSUPPORTED_BACKGROUND
    # the highlight follows the text: rewritten without the mark, the line is plain again
    dialog.editor.setPlainText(
        text.replace(f"{UNSUPPORTED_MARK}{UNSUPPORTED}", "Warfarin since 2021 (checked).")
    )
    assert dialog.unsupported_lines() == []


def test_the_approval_box_is_masked_in_the_de_identified_view(qtbot, services) -> None:  # noqa: ANN001
    from noteward.core.models import Patient

    approved = _summary(
        approved_text="Problems:\n- Seen by Dr. Quentin Kertzmann for asthma.\n",
        approved_by="dr_lee",
        approved_at="2026-12-07T03:10:00+00:00",
    )
    pane = _pane(qtbot, services, approved)
    pane.set_deidentified(Patient("pt_x", "src-x", "Denis Schmitt", "2011-03-23", "male"))
    qtbot.waitUntil(lambda: not pane.deid_pending, timeout=120_000)
    assert "Kertzmann" not in pane.approved_view.text() and "asthma" in pane.approved_view.text()
    assert pane.approved_label.text() == "Approved by dr_lee, 2026"  # the year only
    assert not pane.approve_button.isEnabled()


def test_a_summary_written_now_keeps_the_approved_one_above_it(qtbot, services) -> None:  # noqa: ANN001
    """The app's Summarize on a patient with an approved summary: the fresh result (not yet
    reloaded from the vault) follows the approved one, marked not approved."""
    approved = _summary(
        "sm_old",
        approved_text=APPROVED_TEXT,
        approved_by="dr_lee",
        approved_at="2026-12-07T03:10:00+00:00",
    )
    pane = _pane(qtbot, services, approved)
    fresh = _summary("sm_fresh")  # what the summarizer hands back: no approval of its own
    pane._show_result(fresh, saved=False)
    qtbot.waitUntil(lambda: pane.settled and len(pane.views) == 2, timeout=5_000)
    assert pane.summary is fresh
    assert pane.approved_box.isVisible() and pane.approved_view.text() == APPROVED_TEXT
    assert pane.newer_label.isVisible() and pane.views[0].isVisible()
    assert "Machine-generated" in pane.machine_label.text()
