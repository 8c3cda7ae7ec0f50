# bash completion for encore and encored
_encore()
{
	local cur prev cmd i
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	cmd=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--server|--output) ((i++)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	case $prev in
	--server) COMPREPLY=($(compgen -W "http://127.0.0.1:8080" -- "$cur")); return ;;
	--output) COMPREPLY=($(compgen -W "alsa alsa: null null:realtime wav:" -- "$cur")); return ;;
	--quality) COMPREPLY=($(compgen -W "auto 24 96 160 320" -- "$cur")); return ;;
	--type) COMPREPLY=($(compgen -W "track artist album playlist show episode" -- "$cur")); return ;;
	--seek|--duration|--prefetch|--volume|--limit) return ;;
	esac
	local opts
	case $cmd in
	"") opts="--server --output --help --version login logout whoami show search play remote playlist events" ;;
	login|logout) opts="--help" ;;
	whoami|show) opts="--json --help" ;;
	search) opts="--type --limit --json --help" ;;
	play) opts="--quality --output --seek --duration --prefetch --volume --no-normalize --autoplay --no-control --json --help" ;;
	remote) opts="play pause toggle next prev stop seek volume shuffle repeat normalize queue status subscribe --help" ;;
	playlist) opts="ls show create rename add rm mv collab follow --public --collaborative --json --help" ;;
	events) opts="status flush --json --help" ;;
	esac
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _encore encore

_encored()
{
	local cur prev cmd
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	cmd=${COMP_WORDS[1]}
	case $prev in
	--data) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--tier) COMPREPLY=($(compgen -W "free premium" -- "$cur")); return ;;
	--format) COMPREPLY=($(compgen -W "csv json" -- "$cur")); return ;;
	--plan) COMPREPLY=($(compgen -W "synthetic demo" -- "$cur")); return ;;
	esac
	local opts
	if [ "$COMP_CWORD" -eq 1 ]; then
		opts="serve seed-demo seed-catalog ingest user report --help --version"
	else
		case $cmd in
		serve) opts="--data --listen --workers --token-ttl --rate-limit-user --rate-limit-ip --max-body --ingest-workers --url-ttl --edge-mb --fault-latency-ms --fault-bandwidth-kbps --fault-error-rate --fault-drop-rate --help" ;;
		seed-demo) opts="--data --tracks --seconds --episodes --episode-seconds --eager --lazy --no-wait --help" ;;
		seed-catalog) opts="--data --tracks --plan --seed --help" ;;
		ingest) opts="--data --title --artist --album --markets --explicit --genre --label --release-date --popularity --no-wait --help" ;;
		user) opts="add --data --admin --tier --country --help" ;;
		report) opts="royalties --data --from --to --format --audit --help" ;;
		esac
	fi
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	if [ "$cmd" = ingest ] && [[ $cur != -* ]]; then
		COMPREPLY+=($(compgen -f -- "$cur"))
	fi
}
complete -F _encored encored
