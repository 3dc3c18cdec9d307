// Package transfer will hold a verified blob Transferer and a distribution-layout importer.
package transfer
