# muon.gp - figure 7: Muon's equilibrium against momentum. Top: the simulated per-row norm (left)
# and RMS angular update (right) with their 95% intervals, and theory's three predictions (best;
# lionlike, the Lion-style correlation factor; plain, uncorrelated updates), log-log. Bottom: each
# prediction's error 100 (predicted/measured - 1) in percent, with the simulation's 95% interval
# as a band around 0; an error beyond the panel's inner 3/4 is a triangle at its edge labelled
# with the value in percent or, beyond a factor 2, the ratio (x2.3, or 1/4.8 for 4.8 times too
# small).
#
#   gnuplot -c muon.gp DATA OUT TITLE SETTING XLO XHI ERANGE
#     DATA     data file written by `roteq plot muon`: one block, a header line, one row per
#              momentum; columns 1 momentum, 2 x = 1/(1 - momentum), 3 tick label; row norm:
#              4 measured, 5-6 95% CI, 7 best, 8 plain, 9 lionlike; row angle: 10-15 the same;
#              norm error (%): 16 best, 17 plain, 18 lionlike, 19 CI half-width; angle: 20-23
#     OUT      figure file; .svg gives SVG, anything else PNG
#     TITLE    figure title          SETTING  second title line (shape and hyperparameters)
#     XLO XHI  range of x            ERANGE   half-range of the error panels (%)

_d = ''; _s = ARG0; while (strstrt(_s, '/') > 0) { _k = strstrt(_s, '/'); _d = _d . _s[1:_k]; _s = _s[_k+1:] }
ROTEQ_OUT = ARG2; load _d . 'style.gp'

DATA = ARG1; XLO = real(ARG5); XHI = real(ARG6); R = real(ARG7)
eval roteq_term(1100, 860)
set output ARG2
set multiplot title sprintf("%s\n%s", ARG3, ARG4)

# Momentum on a log axis of 1/(1 - momentum), the number of steps the buffer averages over, so
# that 0.9, 0.95 and 0.98 are spread out; the ticks are the momenta of the points.
set logscale x
set xrange [XLO:XHI]
unset mxtics
set xlabel 'momentum (axis: 1/(1 − momentum))'
set bars small

# Top row: values, log y, the range fitted to the data.
set logscale y
eval roteq_log_ytics
set autoscale yfix
set offsets 0, 0, graph 0.06, graph 0.06
set size 0.5, 0.56
set key top left font ',9' spacing 1.0 samplen 3
set origin 0, 0.38
set ylabel 'row norm at equilibrium'
plot DATA using 2:7 with linespoints lc 1 lw 2 pt 7 ps 0.6 title 'best', \
     DATA using 2:9 with linespoints lc 3 lw 1.5 dt (6,3) pt 9 ps 0.9 title 'lionlike (Lion-style factor)', \
     DATA using 2:8 with linespoints lc 2 lw 1.5 dt (2,2) pt 5 ps 0.8 title 'plain (uncorrelated updates)', \
     DATA using 2:4:5:6:xtic(3) with yerrorbars lc rgb '#000000' lw 1.2 pt 6 ps 1.6 title 'simulated (bars, band below: 95% CI)'
set origin 0.5, 0.38
unset key
set ylabel 'RMS angular update per row (rad/step)'
plot DATA using 2:13 with linespoints lc 1 lw 2 pt 7 ps 0.6, \
     DATA using 2:15 with linespoints lc 3 lw 1.5 dt (6,3) pt 9 ps 0.9, \
     DATA using 2:14 with linespoints lc 2 lw 1.5 dt (2,2) pt 5 ps 0.8, \
     DATA using 2:10:11:12:xtic(3) with yerrorbars lc rgb '#000000' lw 1.2 pt 6 ps 1.6

# Bottom row: errors in percent. An error beyond 3/4 of the panel is drawn as a triangle at the
# edge pointing off it (plain at 0.93 R, lionlike at 0.82 R, so both stay visible) and labelled
# with its value; the lines join only the errors drawn in place.
unset logscale y
set offsets 0, 0, 0, 0
set format y '%g'
set ytics autofreq
set yrange [-R:R]
set size 0.5, 0.38
set xzeroaxis lt 1 lc rgb '#555555' dt (4,3)
inside(e) = abs(e) <= 0.75 * R ? e : NaN
edge(e, f) = abs(e) > 0.75 * R ? sgn(e) * f * R : NaN
tri(e) = e > 0 ? 9 : 11
ratio(e) = 1 + e / 100
lab(e) = ratio(e) < 0.5 ? sprintf('1/%.1f', 1 / ratio(e)) : (ratio(e) > 2 ? sprintf('x%.1f', ratio(e)) : sprintf(abs(e) < 10 ? '%+.1f%%' : '%+.0f%%', e))
do for [q=0:1] {
    c = 16 + 4 * q
    set origin 0.5 * q, 0
    set ylabel (q == 0 ? 'norm: predicted/measured − 1 (%)' : 'angle: predicted/measured − 1 (%)')
    plot DATA using 2:(-column(c+3)):(column(c+3)):xtic(3) with filledcurves fs transparent solid 0.18 noborder lc rgb '#555555', \
         DATA using 2:(column(c)) with linespoints lc 1 lw 2 pt 7 ps 0.8, \
         DATA using 2:(inside(column(c+2))) with linespoints lc 3 lw 1.5 dt (6,3) pt 9 ps 0.9, \
         DATA using 2:(inside(column(c+1))) with linespoints lc 2 lw 1.5 dt (2,2) pt 5 ps 0.8, \
         DATA using 2:(edge(column(c+1), 0.93)):(tri(column(c+1))) with points lc 2 pt variable ps 1.1, \
         DATA using 2:(edge(column(c+2), 0.82)):(tri(column(c+2))) with points lc 3 pt variable ps 1.1, \
         DATA using 2:(edge(column(c+1), 0.93)):(lab(column(c+1))) with labels left offset 0.9, 0 font ',8' tc lt 2, \
         DATA using 2:(edge(column(c+2), 0.82)):(lab(column(c+2))) with labels left offset 0.9, 0 font ',8' tc lt 3
}
unset multiplot
unset output
