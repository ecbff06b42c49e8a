"""Every figure builder: traces, axis titles and units."""
import numpy as np
import plotly.graph_objects as go

from flowdash.pages import theme
from flowdash.pages.data import figures as data_figures
from flowdash.pages.fit import figures as fit_figures
from flowdash.pages.model import figures as model_figures

X = np.linspace(-1, 1, 41)
PEQ = np.exp(-X ** 2 * 4)
PEQ = PEQ / np.trapezoid(PEQ, X)


def titles(fig, axis):
    return [getattr(fig.layout, k).title.text for k in fig.layout
            if k.startswith(axis) and getattr(fig.layout, k).title.text]


def test_model_preview_three_panels_with_units():
    fr = np.stack([100 * (X + 1), 50 + 0 * X], axis=1)
    fig = model_figures.model_preview(X, PEQ, PEQ, fr)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 4                 # Φ, p0, two neurons
    np.testing.assert_allclose(fig.data[0].y, -np.log(PEQ))
    assert [t.name for t in fig.data[2:]] == ["neuron 1", "neuron 2"]
    assert titles(fig, "xaxis") == [theme.X_TITLE] * 3
    assert [fig.layout.yaxis.title.text, fig.layout.yaxis2.title.text,
            fig.layout.yaxis3.title.text] == [theme.POTENTIAL_TITLE, theme.DENSITY_TITLE,
                                              theme.RATE_TITLE]
    assert "(Hz)" in theme.RATE_TITLE and "(a.u.)" in theme.X_TITLE
    assert fig.data[2].line.color != fig.data[3].line.color


def test_raster_rows_and_colours():
    spikes = [[np.array([0.1, 0.6]), np.array([0.3])], [np.array([]), np.array([0.5])]]
    fig = data_figures.raster(spikes, [3, 7], n_neurons=2)
    assert len(fig.data) == 2
    np.testing.assert_allclose(fig.data[0].x, [0.1, 0.6])   # neuron 0: trial 3
    np.testing.assert_allclose(fig.data[1].x, [0.3, 0.5])   # neuron 1: trial 3, trial 7
    np.testing.assert_allclose(fig.data[1].y, [1, 3])
    assert fig.layout.xaxis.title.text == "time (s)"
    assert list(fig.layout.yaxis.ticktext) == ["3", "7"]


def test_latent_paths():
    fig = data_figures.latent_paths([[0, 1, 2]], [[0.1, -0.2, 0.3]], [4])
    assert len(fig.data) == 1 and fig.data[0].name == "trial 4"
    assert fig.layout.xaxis.title.text == "time (s)"
    assert fig.layout.yaxis.title.text == theme.X_TITLE


def test_rates_and_counts():
    fig = data_figures.rates_and_counts([12.5, 3.0], [250, 60])
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert list(fig.data[1].y) == [250, 60]
    assert "Hz" in fig.layout.yaxis.title.text and "count" in fig.layout.yaxis2.title.text


def test_nll_figure_shifted_with_minimum_marked():
    fig = fit_figures.nll_figure([0, 1, 2, 3], [10, 8, 7, 6.5], [20, 18, 17.5, 19])
    assert [t.name for t in fig.data] == ["training", "validation", "min validation",
                                          fit_figures.GT_NAME]
    assert len(fig.data[3].x) == 0 and fig.data[3].showlegend is False   # no ground truth given
    assert list(fig.data[0].y) == [0, -2, -3, -3.5]
    assert list(fig.data[1].y) == [0, -2, -2.5, -1]
    assert list(fig.data[2].x) == [2] and list(fig.data[2].y) == [-2.5]
    assert fig.layout.shapes[0].x0 == 2
    assert fig.layout.xaxis.title.text == fit_figures.EPOCH_TITLE
    assert "(nats)" in fig.layout.yaxis.title.text


def test_nll_figure_without_validation():
    fig = fit_figures.nll_figure([0, 1], [5, 4], [None, None])
    assert list(fig.data[1].y) == [None, None]
    assert len(fig.data[2].x) == 0 and not fig.layout.shapes


def test_potential_figure_truth_snapshots_latest():
    fig = fit_figures.potential_figure(X, [(1, PEQ), (6, [PEQ])], truth=(X, PEQ),
                                       latest=(9, PEQ))
    assert [t.name for t in fig.data] == ["ground truth", "epoch 1", "epoch 6", "now (epoch 9)"]
    assert fig.data[0].line.color == theme.TRUTH_COLOR
    assert fig.layout.yaxis.title.text == fit_figures.PHI_TITLE             # clipped at 6
    assert fig.layout.xaxis.title.text == theme.X_TITLE


def test_params_figure_panels_follow_fitted_parameters():
    fig = fit_figures.params_figure([0, 1, 2], D=[[1.0], [1.2], [1.3]], x=X,
                                    p0=(2, [PEQ]), fr=(2, np.ones((1, 41, 2))))
    assert len(fig.data) == 1 + 1 + 2
    assert fig.layout.yaxis.title.text == "D (a.u.²/s)"
    assert fig.layout.yaxis2.title.text == theme.DENSITY_TITLE
    assert fig.layout.yaxis3.title.text == theme.RATE_TITLE
    empty = fit_figures.params_figure([0, 1])
    assert len(empty.data) == 0 and "not fitted" in empty.layout.annotations[0].text


def test_overlay_figure():
    fig = fit_figures.overlay_figure([("a", [0, 1], [3, 2], [4, 3]),
                                      ("b", [0, 1, 2], [5, 4, 1], [None, None, None])])
    assert [t.name for t in fig.data] == ["a · training", "a · validation", "b · training"]
    assert list(fig.data[2].y) == [0, -1, -4]
    assert "(nats)" in fig.layout.yaxis.title.text


def test_theme_is_colour_blind_safe_and_exports():
    assert theme.COLORWAY[0] == "#0072B2" and len(set(theme.COLORWAY)) == 8
    assert theme.graph_config("svg")["toImageButtonOptions"]["format"] == "svg"
    assert theme.graph_config("bmp")["toImageButtonOptions"]["format"] == "png"


def test_nll_figures_tolerate_missing_values():
    """A non-finite NLL is stored as None: a gap in the curve, never an error."""
    fig = fit_figures.nll_figure([0, 1, 2], [None, 8.0, 7.0], [None, float("nan"), 3.0])
    assert list(fig.data[0].y) == [None, 0.0, -1.0]
    assert list(fig.data[1].y) == [None, None, 0.0]
    assert list(fig.data[2].x) == [2]
    over = fit_figures.overlay_figure([("a", [0, 1], [None, 2.0], [None, None])])
    assert [t.name for t in over.data] == ["a · training"]


def test_traces_the_live_view_extends_are_plain_json_lists():
    """A Patch can only extend JSON arrays; plotly encodes numpy arrays as typed-array objects."""
    import json

    import plotly.io as pio

    from flowdash.pages.fit import figures as fit_figures

    nll = json.loads(pio.to_json(fit_figures.nll_figure([0, 1], [5.0, 4.0], [6.0, 5.5])))
    params = json.loads(pio.to_json(fit_figures.params_figure([0, 1], D=[[0.5], [0.6]])))
    for trace in nll["data"][:2] + params["data"][:1]:
        assert isinstance(trace["x"], list) and isinstance(trace["y"], list)
    # the first poll of a fresh run comes before epoch 0 is recorded
    empty = fit_figures.params_figure([], D=[])
    assert len(empty.data) == 1 and list(empty.data[0].x) == []


def test_run_names_in_titles_and_legends_are_text_not_links():
    from flowdash.pages.fit import figures as fit_figures
    name = '<a href="http://evil.example">click</a>'
    fig = fit_figures.nll_figure([0, 1], [1.0, 0.5], [1.0, 0.7], f"NLL · {name}")
    assert "<a" not in fig.layout.title.text and "&lt;a href" in fig.layout.title.text
    over = fit_figures.overlay_figure([(name, [0, 1], [1.0, 0.5], [1.0, 0.7])])
    assert all("<a" not in t.name and "&lt;a" in t.name for t in over.data)


def test_paper_figure_is_the_layout_of_fig3():
    """NLL left (training black, validation red, an arrow at the validation minimum),
    then one panel per snapshot epoch over the grey truth, clipped at 6."""
    x = np.linspace(-1, 1, 9)
    steep = np.exp(-40 * x**2)
    steep /= steep.sum()                           # −log peq far above 6 at the ends
    fig = fit_figures.paper_figure([0, 1, 2, 3], [10, 8, 7, 6.5], [20, 18, 17.5, 19], x,
                                   {1: steep, 6: [steep]}, [13, 1, 6, 50], truth=(x, steep),
                                   latest=(3, steep))
    idx = fit_figures.paper_trace_index(4, 1, 1)
    assert [fig.data[i].name for i in (0, 1)] == ["training", "validation"]
    assert (fig.data[0].line.color, fig.data[1].line.color) == ("#000000", "#D7191C")
    assert [a.text for a in fig.layout.annotations][:5] == [
        "Negative log-likelihood", "Φ(x) at epoch 1", "epoch 6", "epoch 13", "epoch 50"]
    arrow = fig.layout.annotations[-1]
    assert arrow.showarrow and (arrow.x, arrow.y) == (2, -2.5)      # shifted validation min
    truth = fig.data[idx["truth"][0][0]]
    assert truth.line.color == fit_figures.PAPER_TRUTH and max(truth.y) == 6.0
    assert len(fig.data[idx["fit"][0][0]].y) == 9 and len(fig.data[idx["fit"][2][0]].y) == 0
    now = fig.data[idx["now"][2][0]]                # the first panel not reached: epoch 13
    assert now.name == "now (epoch 3)" and len(now.y) == 9 and now.line.dash == "dot"
    assert all(len(fig.data[i[0]].y) == 0 for j, i in enumerate(idx["now"]) if j != 2)
    assert fig.layout.yaxis3.matches == "y2" and fig.layout.yaxis2.range[1] == 6.3
    assert fig.layout.xaxis.title.text == "epoch" and "(nats)" in fig.layout.yaxis.title.text
    assert fit_figures.PAPER_EXPORT["format"] == "png" and fit_figures.PAPER_EXPORT["scale"] >= 2


def test_paper_figure_before_any_epoch_and_at_most_six_panels():
    fig = fit_figures.paper_figure([], [], [], [0.0, 1.0], {}, list(range(1, 11)))
    assert len(fig.layout.annotations) == 1 + fit_figures.MAX_PANELS + 1
    assert fig.layout.annotations[-1].visible is False               # no minimum yet
