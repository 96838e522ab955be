# Kernel command line access for the ramdisk's scripts (sourced, POSIX sh + awk).
# Parses as the kernel does: words split on blanks, double quotes group blanks into one
# word and are removed, so sshkey="ssh-ed25519 AAAA... conductor" is one parameter.

# cmdline_get NAME: every value of NAME=... in order, one per line ("" for a bare NAME).
cmdline_get() {
  awk -v want="$1" '
    function emit(word,   eq, key) {
      eq = index(word, "=")
      key = eq ? substr(word, 1, eq - 1) : word
      if (key == want) print (eq ? substr(word, eq + 1) : "")
    }
    {
      n = length($0); word = ""; quoted = 0; seen = 0
      for (i = 1; i <= n + 1; i++) {
        c = (i <= n) ? substr($0, i, 1) : " "
        if (c == "\"") { quoted = !quoted; seen = 1; continue }
        if (!quoted && (c == " " || c == "\t")) { if (word != "" || seen) emit(word); word = ""; seen = 0; continue }
        word = word c
      }
    }' "${CMDLINE_FILE:-/proc/cmdline}"
}

# cmdline_last NAME: the last value of NAME (a later parameter wins, as for the agent).
cmdline_last() {
  cmdline_get "$1" | tail -n 1
}

# cmdline_true NAME: NAME is given as 1, true, yes or on (or bare).
cmdline_true() {
  case "$(cmdline_last "$1" | tr 'A-Z' 'a-z')" in
    1|true|yes|on) return 0 ;;
    "") cmdline_get "$1" | grep -q '^$' && return 0; return 1 ;;
    *) return 1 ;;
  esac
}
