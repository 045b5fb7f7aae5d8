//go:build !purego

#include "textflag.h"

// func dotsAVX2(query []int16, data []int8, out []int32)
//
// For each of len(out) vectors of len(query) int8 values in data (len(query)
// a multiple of 32): sign-extend 16 values at a time to int16, multiply by
// the query's int16 values and add adjacent pairs into int32 lanes
// (VPMADDWD), accumulate in two registers, then sum the lanes.
TEXT ·dotsAVX2(SB), NOSPLIT, $0-72
	MOVQ query_base+0(FP), DI
	MOVQ query_len+8(FP), CX
	MOVQ data_base+24(FP), SI
	MOVQ out_base+48(FP), DX
	MOVQ out_len+56(FP), R8
	TESTQ R8, R8
	JE   done

vector:
	VPXOR Y0, Y0, Y0
	VPXOR Y3, Y3, Y3
	XORQ  AX, AX
	MOVQ  DI, R9

block:
	VPMOVSXBW (SI)(AX*1), Y1
	VPMOVSXBW 16(SI)(AX*1), Y2
	VPMADDWD  (R9), Y1, Y1
	VPMADDWD  32(R9), Y2, Y2
	VPADDD    Y1, Y0, Y0
	VPADDD    Y2, Y3, Y3
	ADDQ      $64, R9
	ADDQ      $32, AX
	CMPQ      AX, CX
	JB        block

	VPADDD       Y3, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4E, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xB1, X0, X1
	VPADDD       X1, X0, X0
	VMOVD        X0, (DX)
	ADDQ         $4, DX
	ADDQ         CX, SI
	DECQ         R8
	JNE          vector

done:
	VZEROUPPER
	RET
