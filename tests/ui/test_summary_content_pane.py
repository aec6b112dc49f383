"""The summary pane shows each sentence's date and conflicts and hides unsupported ones."""

from __future__ import annotations


def _summary():  # noqa: ANN202
    from noteward.core.models import Conflict, SourceSpan, Summary, SummarySentence

    return Summary(
        patient="pt_x",
        model={"id": "smollm2-135m-clinical", "sha256": "cd" * 32},
        summary_id="sm_x",
        covers={"note_ids": ["nt_a", "nt_b"], "date_range": ["2013-08-28", "2022-09-14"]},
        sentences=[
            SummarySentence(
                "Penicillin allergy: hives after amoxicillin.", "Allergies",
                [SourceSpan("nt_b", 10, 54)], 1.0, True, date="2022-09-14", origin="extract",
                conflicts=[Conflict("No Known Allergies.", "2022-04-06", [SourceSpan("nt_a", 5, 24)])],
            ),
            SummarySentence(
                "ibuprofen 100 mg oral tablet", "Medications", [SourceSpan("nt_b", 60, 88)], 1.0, True,
                date="2022-04-06", origin="fact",
            ),
            SummarySentence(
                "Nitrilite 4000 unt/ml injection", "Medications", [], 0.2, False,
                date="2022-09-14", origin="model",
            ),
        ],
    )


def test_dates_conflicts_and_unsupported_hidden_by_default(qtbot, services) -> None:  # noqa: ANN001
    from noteward.ui.summary_pane import SummaryPane

    pane = SummaryPane(services)
    qtbot.addWidget(pane)
    pane.show()
    pane.set_patient("pt_x", latest=_summary())
    qtbot.waitUntil(lambda: pane.settled and len(pane.views) == 3, timeout=5_000)
    allergy, ibuprofen, invented = pane.views
    assert "2022-09-14" in allergy.text() and "2022-04-06" in ibuprofen.text()
    assert "Conflict" in allergy.text() and "No Known Allergies." in allergy.toolTip()
    assert "2022-04-06" in allergy.toolTip()
    # unsupported: hidden by default, one click shows it, marked
    assert allergy.isVisible() and ibuprofen.isVisible() and not invented.isVisible()
    assert pane.show_unsupported_button.isVisible()
    assert pane.show_unsupported_button.text() == "Show 1 unsupported"
    pane.show_unsupported_button.click()
    assert invented.isVisible() and "Unsupported" in invented.text()
    assert pane.show_unsupported_button.text() == "Hide 1 unsupported"
    assert pane.summary is not None and pane.summary.sentences[0].conflicts


def test_an_old_saved_summary_shows_with_its_model(qtbot, services) -> None:  # noqa: ANN001
    from noteward.ui.summary_pane import SummaryPane

    old = {  # a stored summary from before sentences had dates and origins
        "id": "sm_old", "patient": "pt_x", "out_of_date": True, "approved_text": None,
        "model": {"id": "smollm2-135m-instruct-q4_1", "sha256": "ab" * 32},
        "covers": {"note_ids": ["nt_a"], "date_range": [None, None]},
        "sentences": [{"text": "No Known Allergies.", "section": "Allergies",
                       "sources": [{"note_id": "nt_a", "start": 0, "end": 19}],
                       "support": 1.0, "supported": True}],
    }
    pane = SummaryPane(services)
    qtbot.addWidget(pane)
    pane.show()
    pane.set_patient("pt_x", latest=old)
    qtbot.waitUntil(lambda: pane.settled and len(pane.views) == 1, timeout=5_000)
    assert "smollm2-135m-instruct-q4_1" in pane.machine_label.text()
    assert pane.views[0].text().endswith("No Known Allergies.")
    assert pane.summary is not None and pane.summary.sentences[0].date is None
    assert pane.out_of_date.isVisible()
