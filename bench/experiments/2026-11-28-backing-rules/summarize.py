# Per option set in backing_sweep's output: the figures above the defaults' (16,0,0,8,100) on any trace,
# ddp_gpt2_rank0's cold driver calls by kind, and the calls of three warm replays.
import re, sys, collections
rows = collections.OrderedDict()
cols = ['host cold', 'host warm', 'lag0 cold', 'lag0 warm', 'lag2 cold', 'lag2 warm']
for line in open(sys.argv[1]):
    m = re.match(r'(\S+)\s+(\d+,\d+,\d+,\d+,\d+)\s+([\d.]+)/([\d.]+)\s+([\d.]+)/([\d.]+)\s+([\d.]+)/([\d.]+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+) GiB \|\s+(\d+)', line)
    if not m: continue
    t, cfg = m.group(1), m.group(2)
    figs = [float(m.group(i)) for i in range(3, 9)]
    rows.setdefault(cfg, {})[t] = (figs, [int(m.group(i)) for i in range(9, 16)])
base = rows['16,0,0,8,100']
for cfg, traces in rows.items():
    worse, better = [], []
    for t, (figs, c) in traces.items():
        for name, f, b in zip(cols, figs, base[t][0]):
            if f > b + 1e-9: worse.append(f'{t} {name} {b:.4f}->{f:.4f}')
            elif f < b - 1e-9: better.append(t)
    d = traces['ddp_gpt2_rank0'][1]
    warm = {t: traces[t][1][6] for t in traces}
    print(f'{cfg}: ddp cold creates {d[0]} moves {d[1]} unmaps {d[2]} grants {d[3]} calls {d[4]} created {d[5]} GiB; warm x3 calls ddp {warm["ddp_gpt2_rank0"]} e2e {warm["gpt2_varlen_e2e"]} others {sum(v for k,v in warm.items() if k not in ("ddp_gpt2_rank0","gpt2_varlen_e2e"))}')
    print('   above the defaults:', '; '.join(worse) if worse else 'none', '| lower on:', ', '.join(sorted(set(better))))
