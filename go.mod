module github.com/parleychat/parley

go 1.26
