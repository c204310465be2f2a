# histogram.gp - figure 3: per layer, the distribution over neurons of measured / predicted
# angular update at equilibrium. One panel per layer on shared bins; the line at 1 is the
# prediction. A narrow peak at 1 means every neuron rotates as the theory says.
#
#   gnuplot -c histogram.gp DATA OUT TITLE LOGX NPANELS
#     DATA     data file written by `roteq plot histogram`: NPANELS blocks (gnuplot index), each
#              starting with a header line; columns 1 bin centre, 2 fraction of the layer's
#              neurons (header = layer), 3 bin left, 4 bin right, 5 count (header = summary:
#              n, median, 5-95% range, neurons excluded)
#     OUT      figure file; .svg gives SVG, anything else PNG
#     TITLE    figure title    LOGX 1: log-spaced bins on a log x axis    NPANELS blocks

_d = ''; _s = ARG0; while (strstrt(_s, '/') > 0) { _k = strstrt(_s, '/'); _d = _d . _s[1:_k]; _s = _s[_k+1:] }
ROTEQ_OUT = ARG2; load _d . 'style.gp'

DATA = ARG1; N = int(ARG5)
cols = (N <= 3) ? N : ceil(sqrt(N)); rows = ceil(N * 1.0 / cols)
eval roteq_term((N == 1 ? 720 : 380 * cols), 280 * rows + 50)
set output ARG2
if (int(ARG4)) { set logscale x }
set multiplot layout rows, cols title ARG3
# The legend (layer, then its summary) sits above each panel, in a reserved top margin.
set tmargin 3.2
set key at graph 0, graph 1.02 left bottom Left reverse vertical font ',8' samplen 1 spacing 0.9
set yrange [0:*]
set offsets 0, 0, graph 0.05, 0
set xlabel 'measured / predicted angular update' font ',9'
set ylabel 'fraction of neurons' font ',9'
set arrow 1 from 1, graph 0 to 1, graph 1 nohead dt (4,3) lw 1.2 lc rgb '#333333' front
do for [i=0:N-1] {
    plot DATA index i using 1:2:3:4:(0):2 with boxxyerror fs solid 0.55 noborder lc 1 title columnheader(2), \
         DATA index i using 1:2 with points pt 7 ps 0 title columnheader(5)
}
unset multiplot
unset output
