"""repro/fig5_2021.py: the FCA reads the spectrum's boundary conditions (the full run is not in the suite)."""
from flowdash.jobs import ablation
from repro import fig5_2021


def test_fca_mode_follows_boundary_conditions_not_absorption():
    _, _, start = fig5_2021.setup(quick=True)
    modes = [fig5_2021.spectrum_mode(a.apply(start).boundary_conditions) for a in ablation.ABLATIONS]
    # full model, Dirichlet without the absorption step, reflecting, reflecting + equilibrium p0
    assert modes == ["absorbing", "absorbing", "reflecting", "reflecting"]
    assert ablation.ABLATIONS[1].apply(start).boundary_mode == "reflecting"
