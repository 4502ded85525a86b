import json,sys
base={'bert_infer_varlen':1.1722,'cnn_train':1.1067,'ddp_gpt2_rank0':1.1212,'effnet_train_multiscale':1.0049,'gpt2_generate_varlen':1.0501,'gpt2_varlen_e2e':1.1063,'gpt_train_varlen':1.0100,'llama_train_ckpt_varlen':1.1794,'mlp_two_streams':1.1315,'resnet50_train':1.0155,'seg_train_multiscale':1.0308,'t5_train_varlen':1.0326,'vit_train_amp':1.0378}
short={'bert_infer_varlen':'bert','cnn_train':'cnn','ddp_gpt2_rank0':'ddp','effnet_train_multiscale':'effnet','gpt2_generate_varlen':'gpt2_gen','gpt2_varlen_e2e':'e2e','gpt_train_varlen':'gpt_train','llama_train_ckpt_varlen':'llama','mlp_two_streams':'mlp','resnet50_train':'resnet','seg_train_multiscale':'seg','t5_train_varlen':'t5','vit_train_amp':'vit'}
def load(f):
    return {(j['trace'],j['allocator']):j for j in map(json.loads,open(f))}
main=load('res/m0.json')
variants=[l.split('|') for l in open(sys.argv[1]).read().strip().splitlines()]
alloc=sys.argv[2]
# summary
print(f"\n#### Summary, `{alloc}`\n")
print("| rule | traces above 039b03f cold | which | settled worse than main by >0.002 | cnn settled (main %.4f) | mlp settled (main %.4f) |" % (main[('cnn_train',alloc)]['settled_reserved_over_live'], main[('mlp_two_streams',alloc)]['settled_reserved_over_live']))
print("|---|---|---|---|---|---|")
for name,f in variants:
    d=load('res/'+f)
    above=[short[t] for t in base if d[(t,alloc)]['reserved_over_live']>base[t]]
    worse=[f"{short[t]} {d[(t,alloc)]['settled_reserved_over_live']:.4f}" for t in base if d[(t,alloc)]['settled_reserved_over_live']>main[(t,alloc)]['settled_reserved_over_live']+0.002]
    print(f"| {name} | {len(above)} | {', '.join(above)} | {len(worse)}: {', '.join(worse)} | {d[('cnn_train',alloc)]['settled_reserved_over_live']:.4f} | {d[('mlp_two_streams',alloc)]['settled_reserved_over_live']:.4f} |")
print(f"\n#### Cold / settled reserved/live, `{alloc}` (bold: cold above 039b03f)\n")
print("| trace | 039b03f cold | main | "+" | ".join(n for n,_ in variants)+" |")
print("|---|---|---|"+"---|"*len(variants))
for t in base:
    m=main[(t,alloc)]
    row=[short[t],f"{base[t]:.4f}",f"{m['reserved_over_live']:.4f} / {m['settled_reserved_over_live']:.4f}"]
    for n,f in variants:
        j=load('res/'+f)[(t,alloc)]
        c=f"{j['reserved_over_live']:.4f}"
        if j['reserved_over_live']>base[t]: c=f"**{c}**"
        row.append(f"{c} / {j['settled_reserved_over_live']:.4f}")
    print("| "+" | ".join(row)+" |")
