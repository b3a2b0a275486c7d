from attribution.plots import forget_retain_scatter, head_heatmap, neuron_strip
from tests.attribution.test_ranking import make


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_saved_as_png(tmp_path):
    ranking = make()
    paths = [
        head_heatmap(ranking, tmp_path / "heads.png", which="forget"),
        neuron_strip(ranking, tmp_path / "neurons.png"),
        neuron_strip(ranking.rerank(0.0), tmp_path / "sub" / "top.png", top_k=1),
        forget_retain_scatter(ranking, tmp_path / "scatter.png", highlight=2),
    ]
    assert all(p.exists() and _is_png(p) for p in paths)
