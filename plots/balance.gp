# balance.gp - figure 4: how the rotation is shared out, for several runs side by side.
#   MODE layers:  one bar per (layer, run): RMS angular update over the layer's neurons, a
#                 5-95% range across its neurons and a black tick at the prediction.
#   MODE neurons: every run is one ensemble (the simulator): its neurons sorted by angular
#                 update; a flat line is a balanced run, a slope an imbalanced one. Dashed: the
#                 prediction of the same neurons.
#
#   gnuplot -c balance.gp DATA OUT TITLE LOGY NRUNS MODE NLAYERS
#     DATA     data file written by `roteq plot balance`: NRUNS blocks (gnuplot index), each
#              starting with a header line. layers: 1 layer position, 2 measured (header =
#              legend), 3 q05, 4 q95, 5 predicted, 6 layer name. neurons: 1 rank in 0..1,
#              2 measured sorted (header = legend), 3 predicted, 4 measured/predicted
#     OUT      figure file; .svg gives SVG, anything else PNG
#     TITLE    figure title   LOGY 1: logarithmic y   NRUNS blocks   MODE layers|neurons
#     NLAYERS  layers per block (layers mode)

_d = ''; _s = ARG0; while (strstrt(_s, '/') > 0) { _k = strstrt(_s, '/'); _d = _d . _s[1:_k]; _s = _s[_k+1:] }
ROTEQ_OUT = ARG2; load _d . 'style.gp'

DATA = ARG1; N = int(ARG5); L = int(ARG7)
if (int(ARG4)) { set logscale y; eval roteq_log_ytics }
set ylabel 'angular update per step (rad)'
set title ARG3
set key outside right top vertical

if (ARG6 eq 'neurons') {
    eval roteq_term(900, 540)
    set output ARG2
    set xlabel 'neurons, sorted by angular update (rank)'
    set xrange [0:1]
    plot for [i=0:N-1] DATA index i using 1:2 with lines lw 2 lc i+1 title columnheader(2), \
         for [i=0:N-1] DATA index i using 1:3 with lines dt (6,4) lw 1.5 lc i+1 notitle, \
         NaN with lines dt (6,4) lw 1.5 lc rgb '#333333' title 'predicted'
} else {
    eval roteq_term((L * N * 28 + 320 < 900 ? 900 : L * N * 28 + 320), 560)
    set output ARG2
    w = 0.8 / N
    off(i) = (i - (N - 1) / 2.0) * w
    set xrange [-0.6:L - 0.4]
    if (!int(ARG4)) { set yrange [0:*] }
    set boxwidth w absolute
    set style fill solid 0.75 noborder
    set xtics scale 0
    if (L > 6) { set xtics rotate by -40 left font ',8' }
    set xlabel 'layer'
    plot DATA index 0 using 1:(NaN):xtic(6) with points notitle, \
         for [i=0:N-1] DATA index i using ($1 + off(i)):2 with boxes lc i+1 title columnheader(2), \
         for [i=0:N-1] DATA index i using ($1 + off(i)):3:(0):($4 - $3) with vectors heads size screen 0.004,90 lw 1 lc rgb '#555555' notitle, \
         for [i=0:N-1] DATA index i using ($1 + off(i)):5:(w / 2) with xerrorbars pt 7 ps 0 lw 2.5 lc rgb '#000000' notitle, \
         NaN with lines lw 2.5 lc rgb '#000000' title 'predicted', \
         NaN with lines lw 1 lc rgb '#555555' title '5–95% of neurons (bar)'
}
unset output
