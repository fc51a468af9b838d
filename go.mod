module github.com/mtlsid/mtlsid

go 1.26.0
